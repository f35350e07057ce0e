dnl KVMRUN_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
dnl Compiles and links with FLAG added and -Werror, so a flag the compiler
dnl merely warns about is not taken.
AC_DEFUN([KVMRUN_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([cache], [kvmrun_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [cache], [
    kvmrun_save_CFLAGS=$CFLAGS
    kvmrun_save_LDFLAGS=$LDFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    LDFLAGS="$LDFLAGS $1"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])], [AS_VAR_SET([cache], [yes])], [AS_VAR_SET([cache], [no])])
    CFLAGS=$kvmrun_save_CFLAGS
    LDFLAGS=$kvmrun_save_LDFLAGS
  ])
  AS_VAR_IF([cache], [yes], [$2], [$3])
  AS_VAR_POPDEF([cache])
])

dnl AX_PTHREAD_SIMPLE: -pthread is all glibc needs; fail clearly otherwise.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  KVMRUN_CHECK_CFLAG([-pthread], [PTHREAD_CFLAGS=-pthread; PTHREAD_LIBS=-pthread],
    [AC_MSG_ERROR([$CC does not accept -pthread: kvmrun needs POSIX threads])])
  kvmrun_save_LIBS=$LIBS
  LIBS="$LIBS $PTHREAD_LIBS"
  AC_CHECK_FUNC([pthread_create], [], [AC_MSG_ERROR([pthread_create not found: kvmrun needs POSIX threads])])
  LIBS=$kvmrun_save_LIBS
  AC_SUBST([PTHREAD_CFLAGS])
  AC_SUBST([PTHREAD_LIBS])
])
