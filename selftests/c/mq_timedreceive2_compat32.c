// SPDX-License-Identifier: GPL-2.0
/*
 * mq_timedreceive2() through the 32-bit (ia32 compat) entry point.
 *
 * Built with `gcc -m32` by `cargo xtask test`: here size_t and pointers are
 * 4 bytes, so struct mq_timedreceive2_args has the compat layout (12 bytes).
 * The timeout is a struct __kernel_timespec for 32-bit tasks too (the call
 * has no 32-bit time_t variant), so this is built with a 64-bit time_t.
 * Exit 0 pass, 1 fail, 4 skip, like a kselftest.
 */
#define _FILE_OFFSET_BITS 64
#define _TIME_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NR_mq_timedreceive2 472
#define MQ_PEEK 2U

struct mq_timedreceive2_args {
	size_t msg_len;
	unsigned int *msg_prio;
	char *msg_ptr;
};

_Static_assert(sizeof(void *) == 4, "build with -m32");
_Static_assert(sizeof(struct mq_timedreceive2_args) == 12, "compat layout");
_Static_assert(sizeof(time_t) == 8, "64-bit time_t, see above");

static int failures;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "not ok", what);
	if (!ok)
		failures++;
}

static long rcv2(mqd_t q, struct mq_timedreceive2_args *a, unsigned int flags,
		 unsigned long index, const struct timespec *ts)
{
	return syscall(NR_mq_timedreceive2, q, a, flags, index, ts);
}

int main(void)
{
	struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 64 };
	char name[64], buf[64];
	unsigned int prio = 0;
	struct mq_timedreceive2_args a = { sizeof(buf), &prio, buf };
	struct mq_attr now;
	struct timespec ts;
	mqd_t q;
	long n, nr;
	int ok;

	snprintf(name, sizeof(name), "/uring-ipc-compat32-%d", getpid());
	q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
	if (q == (mqd_t)-1) {
		printf("# mq_open: %s\n", strerror(errno));
		return errno == ENOSYS ? 4 : 1;
	}
	mq_unlink(name);
	if (rcv2(-1, NULL, MQ_PEEK, 0, NULL) < 0 && errno == ENOSYS) {
		printf("# no mq_timedreceive2 in the 32-bit syscall table\n");
		return 4;
	}

	/* the numbers mainline gave to calls added after 6.12 stay unknown */
	ok = 1;
	for (nr = 463; nr < NR_mq_timedreceive2; nr++)
		if (syscall(nr, -1, 0, 0, 0, 0) != -1 || errno != ENOSYS)
			ok = 0;
	check(ok, "463 to 471 are ENOSYS");

	mq_send(q, "low", 3, 1);
	mq_send(q, "high", 4, 7);
	mq_send(q, "mid", 3, 4);

	memset(buf, 0, sizeof(buf));
	n = rcv2(q, &a, MQ_PEEK, 1, NULL);
	check(n == 3 && !memcmp(buf, "mid", 3) && prio == 4, "peek index 1 through the compat struct");

	n = rcv2(q, &a, MQ_PEEK, 3, NULL);
	check(n < 0 && errno == ENOMSG, "peek past the end is ENOMSG");

	mq_getattr(q, &now);
	check(now.mq_curmsgs == 3, "peek leaves three messages queued");

	ts.tv_sec = 4102444800LL;	/* 2100-01-01: past 2038 */
	ts.tv_nsec = 0;
	n = rcv2(q, &a, 0, 0, &ts);
	check(n == 4 && !memcmp(buf, "high", 4) && prio == 7,
	      "flags 0 with a deadline past 2038 receives the highest priority");

	n = rcv2(q, &a, MQ_PEEK, 0, &ts);
	check(n < 0 && errno == EINVAL, "a peek with a timeout is EINVAL");

	a.msg_len = 63;
	n = rcv2(q, &a, MQ_PEEK, 0, NULL);
	check(n < 0 && errno == EMSGSIZE, "short msg_len is EMSGSIZE");
	a.msg_len = sizeof(buf);

	rcv2(q, &a, 0, 0, NULL);
	rcv2(q, &a, 0, 0, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 50 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	n = rcv2(q, &a, 0, 0, &ts);
	check(n < 0 && errno == ETIMEDOUT, "64-bit time_t timeout expires with ETIMEDOUT");

	mq_close(q);
	return failures ? 1 : 0;
}
