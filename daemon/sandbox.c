/*
 * The seccomp filter kvmrund runs under once it serves: the system calls of
 * the event loop, the workers and the engine, socket() for AF_UNIX only (for
 * sd_notify), and ioctl() for the KVM requests the engine issues and the
 * terminal query stdio makes; opening files fails with EACCES (but for
 * /dev/kvm's flags while the daemon waits for KVM).  Anything
 * else kills the process: a daemon
 * that runs untrusted guests does not go on after doing what it never does.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <seccomp.h>

#include "sandbox.h"

static const int allowed_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
	SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap),
	SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(exit), SCMP_SYS(exit_group),
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
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(connect),
	SCMP_SYS(prctl), SCMP_SYS(sysinfo),
};

static const unsigned long allowed_ioctls[] = {
	KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM,
	KVM_SET_TSS_ADDR, KVM_ENABLE_CAP, KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU,
	KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2, KVM_SET_XCRS, KVM_GET_REGS, KVM_SET_REGS,
	KVM_GET_SREGS, KVM_SET_SREGS, KVM_RUN, TCGETS,
};

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

int
sandbox_enter(bool may_open_kvm, struct kvmrun_error *err)
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
	if ((rc = sandbox_open_rules(ctx, may_open_kvm)) < 0) {
		seccomp_error(err, rc, "open rule");
		goto out_release;
	}
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				   SCMP_A0(SCMP_CMP_EQ, AF_UNIX))) < 0) {
		seccomp_error(err, rc, "socket rule");
		goto out_release;
	}
	if ((rc = seccomp_load(ctx)) < 0)
		seccomp_error(err, rc, "seccomp_load");
out_release:
	seccomp_release(ctx);
	return rc;
}

int
sandbox_selftest(struct kvmrun_error *err)
{
	int fd, rc;

	if ((rc = sandbox_enter(false, err)) < 0)
		return rc;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0)
		close(fd);
	return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				"seccomp: socket(AF_INET) was allowed (fd %d); the filter "
				"does not hold", fd);
}
