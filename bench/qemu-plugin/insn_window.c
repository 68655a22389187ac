// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A QEMU TCG plugin that counts the guest instructions executed by all
 * vCPUs between two marker instructions, so that a benchmark's cost can
 * be read as instructions per message: a number that moves far less with
 * the host's load than times do.
 *
 * The markers are 9-byte NOPs that nothing else emits,
 * nopw disp32(%rax,%rax,1) with the displacement spelling "uip1" (start)
 * or "uip0" (stop); uring-ipc-bench executes them at the start and the end
 * of each timed window (bench/src/stats.rs, insn_marker). At every stop
 * marker one line is appended to the output file:
 *
 *     window <n> insns <count> spin <count>
 *
 * <n> counts stops from 0, the first <count> is the number of instructions
 * all vCPUs executed since the latest start marker, outside spin-wait
 * loops; the second those in spin-wait loops (translation blocks holding a
 * PAUSE, which cpu_relax() emits). Under TCG a vCPU spins for as long as
 * the host does not run the vCPU it waits for (an IPI's target, a lock
 * holder), so spinning measures the host's load, not the guest's work.
 * Instructions are counted per translation block at its entry, which is
 * exact for blocks that run to their end and overcounts by at most one
 * block per interrupt.
 *
 * Usage: qemu-system-x86_64 -plugin ./insn_window.so,out=<file> ...
 *
 * Only the part of QEMU's plugin API (version 1, QEMU 7.2 and later) that
 * this file uses is declared here, so that it builds without QEMU's headers.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

#define EXPORT __attribute__((visibility("default")))
#define CB_NO_REGS 0

typedef void (*tb_trans_cb)(plugin_id id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu, void *udata);
typedef void (*udata_cb)(plugin_id id, void *udata);

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
						  size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
					  vcpu_udata_cb cb, int flags,
					  void *udata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
					    vcpu_udata_cb cb, int flags,
					    void *udata);
void qemu_plugin_register_atexit_cb(plugin_id id, udata_cb cb, void *udata);

EXPORT int qemu_plugin_version = 1;

#define MAX_VCPUS 64

/* One counter per vCPU, each on its own cache line; only its vCPU writes it. */
static struct {
	uint64_t insns;
	uint64_t spin;
	char pad[48];
} counters[MAX_VCPUS] __attribute__((aligned(64)));

static const unsigned char marker_prefix[5] = { 0x66, 0x0f, 0x1f, 0x84, 0x00 };
static const unsigned char marker_start[4] = { 'u', 'i', 'p', '1' };
static const unsigned char marker_stop[4] = { 'u', 'i', 'p', '0' };

/* Serializes the window state and the output file between vCPU threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static uint64_t window_start, window_spin;
static int window_open;
static uint64_t windows;
static uint64_t vcpu_overflow;

static uint64_t total(int spin)
{
	uint64_t sum = 0;

	for (int i = 0; i < MAX_VCPUS; i++)
		sum += __atomic_load_n(spin ? &counters[i].spin : &counters[i].insns,
				       __ATOMIC_RELAXED);
	return sum;
}

static void add(unsigned int vcpu, uint64_t n, int spin)
{
	uint64_t *c;

	if (vcpu >= MAX_VCPUS) {
		__atomic_fetch_add(&vcpu_overflow, 1, __ATOMIC_RELAXED);
		c = spin ? &counters[MAX_VCPUS - 1].spin : &counters[MAX_VCPUS - 1].insns;
		__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
		return;
	}
	c = spin ? &counters[vcpu].spin : &counters[vcpu].insns;
	/* Single writer: a relaxed load and store cannot lose an update. */
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static void tb_exec(unsigned int vcpu, void *udata)
{
	add(vcpu, (uintptr_t)udata, 0);
}

static void tb_exec_spin(unsigned int vcpu, void *udata)
{
	add(vcpu, (uintptr_t)udata, 1);
}

static void on_start(unsigned int vcpu, void *udata)
{
	pthread_mutex_lock(&lock);
	window_start = total(0);
	window_spin = total(1);
	window_open = 1;
	pthread_mutex_unlock(&lock);
}

static void on_stop(unsigned int vcpu, void *udata)
{
	uint64_t now = total(0), spin = total(1);

	pthread_mutex_lock(&lock);
	if (out) {
		if (window_open)
			fprintf(out, "window %llu insns %llu spin %llu\n",
				(unsigned long long)windows,
				(unsigned long long)(now - window_start),
				(unsigned long long)(spin - window_spin));
		else
			fprintf(out, "window %llu unopened\n",
				(unsigned long long)windows);
		fflush(out);
	}
	windows++;
	window_open = 0;
	pthread_mutex_unlock(&lock);
}

static int is_marker(const struct qemu_plugin_insn *insn, const unsigned char *tag)
{
	const unsigned char *b = qemu_plugin_insn_data(insn);

	return qemu_plugin_insn_size(insn) == 9 &&
	       !memcmp(b, marker_prefix, sizeof(marker_prefix)) &&
	       !memcmp(b + 5, tag, 4);
}

static int is_pause(const struct qemu_plugin_insn *insn)
{
	const unsigned char *b = qemu_plugin_insn_data(insn);

	return qemu_plugin_insn_size(insn) == 2 && b[0] == 0xf3 && b[1] == 0x90;
}

static void tb_trans(plugin_id id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);
	int spin = 0;

	for (size_t i = 0; i < n; i++)
		spin |= is_pause(qemu_plugin_tb_get_insn(tb, i));
	qemu_plugin_register_vcpu_tb_exec_cb(tb, spin ? tb_exec_spin : tb_exec,
					     CB_NO_REGS, (void *)(uintptr_t)n);
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		if (is_marker(insn, marker_start))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start,
							       CB_NO_REGS, NULL);
		else if (is_marker(insn, marker_stop))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop,
							       CB_NO_REGS, NULL);
	}
}

static void at_exit(plugin_id id, void *udata)
{
	pthread_mutex_lock(&lock);
	if (out) {
		fprintf(out, "total insns %llu spin %llu windows %llu vcpu_overflow %llu\n",
			(unsigned long long)total(0), (unsigned long long)total(1),
			(unsigned long long)windows,
			(unsigned long long)vcpu_overflow);
		fclose(out);
		out = NULL;
	}
	pthread_mutex_unlock(&lock);
}

EXPORT int qemu_plugin_install(plugin_id id, const void *info, int argc,
			       char **argv)
{
	const char *path = NULL;

	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	if (!path) {
		fprintf(stderr, "insn_window: missing out=<file>\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
