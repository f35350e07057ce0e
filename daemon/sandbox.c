/*
 * The seccomp filter kvmrund runs under once it serves: the system calls of
 * the event loop, the workers and the engine, each as narrow as the daemon
 * makes it.  socket() only for sd_notify's AF_UNIX datagrams, ioctl() only
 * for the KVM requests the engine issues and the terminal query stdio makes,
 * clone() only for threads, unlinkat() only in the socket's directory, no
 * connect(), unlink() or prctl(); opening files fails with EACCES (but for
 * /dev/kvm's flags while the daemon waits for KVM), and clone3() with ENOSYS,
 * so glibc falls back to the clone() whose flags the filter can see.
 * Anything else kills the process: a daemon that runs untrusted guests does
 * not go on after doing what it never does.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <seccomp.h>

#include "sandbox.h"

static const int allowed_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
	SCMP_SYS(fcntl), SCMP_SYS(dup),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap),
	SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getuid), SCMP_SYS(getgid),
	SCMP_SYS(geteuid), SCMP_SYS(getegid), SCMP_SYS(getrandom),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(tgkill), SCMP_SYS(sigaltstack), SCMP_SYS(signalfd4),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday), SCMP_SYS(timer_create), SCMP_SYS(timer_settime),
	SCMP_SYS(timer_delete), SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select),
	SCMP_SYS(pselect6), SCMP_SYS(eventfd2), SCMP_SYS(pipe2),
	SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto),
	SCMP_SYS(sendmsg), SCMP_SYS(shutdown), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(sysinfo),
};

static const unsigned long allowed_ioctls[] = {
	KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM,
	KVM_SET_TSS_ADDR, KVM_ENABLE_CAP, KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU,
	KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2, KVM_SET_XCRS, KVM_GET_REGS, KVM_SET_REGS,
	KVM_GET_SREGS, KVM_SET_SREGS, KVM_RUN, TCGETS,
	/* The CPU state (vm-x86-state.c). */
	KVM_GET_MSR_INDEX_LIST, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_SET_XSAVE, KVM_GET_XCRS,
	KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_CPUID2,
	/* max_instructions and changes (vm-observe.c). */
	KVM_SET_GUEST_DEBUG, KVM_GET_DIRTY_LOG,
};

/* What a thread (and nothing else: no fork, no namespace) is cloned with. */
#define SANDBOX_THREAD_FLAGS (CLONE_VM | CLONE_THREAD)
#define SANDBOX_NAMESPACE_FLAGS                                                     \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
	 CLONE_NEWNET | CLONE_NEWCGROUP)
/* sd_notify's socket. */
#define SANDBOX_NOTIFY_TYPE (SOCK_DGRAM | SOCK_CLOEXEC)

static int
seccomp_error(struct kvmrun_error *err, int rc, const char *what)
{
	kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "seccomp: %s: %s", what, strerror(-rc));
	return rc;
}

/*
 * open() fails with EACCES; openat() too, except, with MAY_OPEN_KVM, for the
 * flags the engine opens /dev/kvm with.  Under the systemd unit the device
 * policy and the read-only file system narrow that further.
 */
static int
sandbox_open_rules(scmp_filter_ctx ctx, bool may_open_kvm)
{
	const scmp_datum_t kvm_flags = O_RDWR | O_CLOEXEC;
	int rc;

	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0)) < 0)
		return rc;
	if (!may_open_kvm)
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				   SCMP_A2(SCMP_CMP_EQ, kvm_flags))) < 0)
		return rc;
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
				SCMP_A2(SCMP_CMP_NE, kvm_flags));
}

/* The calls allowed only with some arguments. */
static int
sandbox_narrow_rules(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
	int rc;

	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				   SCMP_A0(SCMP_CMP_MASKED_EQ,
					   SANDBOX_THREAD_FLAGS | SANDBOX_NAMESPACE_FLAGS,
					   SANDBOX_THREAD_FLAGS))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
				   SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
				   SCMP_A1(SCMP_CMP_EQ, SANDBOX_NOTIFY_TYPE))) < 0)
		return rc;
	if (cfg->socket_dir_fd >= 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unlinkat), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)cfg->socket_dir_fd));
	return rc;
}

int
sandbox_enter(const struct sandbox_config *cfg, struct kvmrun_error *err)
{
	scmp_filter_ctx ctx;
	int rc;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return seccomp_error(err, -ENOMEM, "seccomp_init");
	/* Every thread, workers included, gets the filter at once. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		seccomp_error(err, rc, "TSYNC");
		goto out_release;
	}
	for (size_t i = 0; i < sizeof(allowed_syscalls) / sizeof(allowed_syscalls[0]); i++) {
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0)) < 0) {
			seccomp_error(err, rc, seccomp_syscall_resolve_num_arch(
						       SCMP_ARCH_NATIVE, allowed_syscalls[i]));
			goto out_release;
		}
	}
	for (size_t i = 0; i < sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]); i++) {
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					   SCMP_A1(SCMP_CMP_EQ, allowed_ioctls[i]))) < 0) {
			seccomp_error(err, rc, "ioctl rule");
			goto out_release;
		}
	}
	/*
	 * Opening files is refused, not fatal: glibc's malloc reads
	 * /sys/devices/system/cpu/online when a thread first needs an arena,
	 * and copes when it cannot.
	 */
	if ((rc = sandbox_open_rules(ctx, cfg->may_open_kvm)) < 0) {
		seccomp_error(err, rc, "open rule");
		goto out_release;
	}
	if ((rc = sandbox_narrow_rules(ctx, cfg)) < 0) {
		seccomp_error(err, rc, "argument rule");
		goto out_release;
	}
	if ((rc = seccomp_load(ctx)) < 0)
		seccomp_error(err, rc, "seccomp_load");
out_release:
	seccomp_release(ctx);
	return rc;
}

enum selftest_call {
	SELFTEST_SOCKET_INET,
	SELFTEST_SOCKET_STREAM,
	SELFTEST_CLONE_FORK,
	SELFTEST_CLONE_NAMESPACE,
	SELFTEST_CONNECT,
	SELFTEST_UNLINK,
	SELFTEST_UNLINKAT,
	SELFTEST_PRCTL,
	SELFTEST_IOCTL,
	SELFTEST_CLONE3, /* refused with ENOSYS */
	SELFTEST_OPEN,	 /* refused with EACCES */
	SELFTEST_COUNT
};

const char *const sandbox_selftest_calls[SELFTEST_COUNT + 1] = {
	"socket-inet", "socket-stream", "clone-fork", "clone-namespace", "connect",
	"unlink", "unlinkat", "prctl", "ioctl", "clone3", "open", NULL,
};

/* Makes CALL; what it returned (-1 with errno when it failed). */
static long
sandbox_forbidden_call(enum selftest_call call)
{
	struct sockaddr sa = { .sa_family = AF_UNIX };

	switch (call) {
	case SELFTEST_SOCKET_INET:
		return socket(AF_INET, SOCK_STREAM, 0);
	case SELFTEST_SOCKET_STREAM:
		return socket(AF_UNIX, SOCK_STREAM, 0);
	case SELFTEST_CLONE_FORK:
		return syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	case SELFTEST_CLONE_NAMESPACE:
		/* Invalid flags without the filter, so it makes nothing if let by. */
		return syscall(SYS_clone, SANDBOX_THREAD_FLAGS | CLONE_NEWNET, 0, NULL,
			       NULL, 0);
	case SELFTEST_CONNECT:
		return connect(0, &sa, sizeof(sa));
	case SELFTEST_UNLINK:
		return unlink("/nonexistent/kvmrun-selftest");
	case SELFTEST_UNLINKAT:
		return unlinkat(AT_FDCWD, "/nonexistent/kvmrun-selftest", 0);
	case SELFTEST_PRCTL:
		return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	case SELFTEST_IOCTL:
		/* Not on the list: only KVM's requests and TCGETS are. */
		return ioctl(0, TIOCGWINSZ, &(struct winsize){ 0 });
	case SELFTEST_CLONE3:
		return syscall(SYS_clone3, NULL, 0);
	case SELFTEST_OPEN:
	case SELFTEST_COUNT:
		break;
	}
	/* Not /dev/kvm's flags, which a daemon without KVM may still open with. */
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int
sandbox_selftest(const char *call, struct kvmrun_error *err)
{
	static const struct sandbox_config cfg = { .may_open_kvm = true, .socket_dir_fd = -1 };
	enum selftest_call which;
	int rc, expected = 0;
	long ret;

	for (which = 0; which < SELFTEST_COUNT; which++)
		if (strcmp(sandbox_selftest_calls[which], call) == 0)
			break;
	if (which == SELFTEST_COUNT)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
					"seccomp selftest: no call %s", call);
	if (which == SELFTEST_CLONE3)
		expected = ENOSYS;
	else if (which == SELFTEST_OPEN)
		expected = EACCES;
	if ((rc = sandbox_enter(&cfg, err)) < 0)
		return rc;
	errno = 0;
	ret = sandbox_forbidden_call(which);
	if (ret < 0 && expected != 0 && errno == expected) {
		kvmrun_error_set(err, KVMRUN_OK, "seccomp: %s was refused with %s", call,
				 strerror(errno));
		return 0;
	}
	return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				"seccomp: %s was let through (returned %ld, %s); the filter "
				"does not hold", call, ret, strerror(errno));
}
