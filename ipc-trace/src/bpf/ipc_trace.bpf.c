// SPDX-License-Identifier: GPL-2.0-only
/*
 * ipc-trace: counts and latencies of io_uring IPC channel traffic and of
 * mq_timedreceive2().
 *
 * No vmlinux.h: the few kernel types used here are declared below with
 * preserve_access_index, so libbpf relocates every field access (CO-RE)
 * against the running kernel's BTF by name, whatever the field order. Fields
 * a kernel may lack (channel_flags, seq) are tested with
 * bpf_core_field_exists() before use.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "intf.h"

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_ANY 0
#define BPF_NOEXIST 1

#define EAGAIN 11
#define EPIPE 32
#define ENOBUFS 105

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

/* Event class io_uring_ipc_msg: io_uring:io_uring_ipc_{send,recv}. */
struct trace_event_raw_io_uring_ipc_msg {
	struct trace_entry ent;
	void *ctx;
	void *req;
	unsigned long long user_data;
	__u32 channel_id;
	__u32 channel_flags;
	__u32 sub_id;
	__u32 len;
	__u64 seq;
	int res;
} __attribute__((preserve_access_index));

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
} __attribute__((preserve_access_index));

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
} __attribute__((preserve_access_index));

/* Set by user space before loading. */
const volatile __u32 filter_tgid;	/* 0: every process */
const volatile long mq_syscall_nr = -1;	/* -1: no mq tracing */
const volatile __u64 mq_peek_flag;
const volatile __u32 f_broadcast;
const volatile __u32 f_multicast;

__u64 ipc_lat[IPCT_MODES][IPCT_SLOTS];
__u64 mq_lat[IPCT_MQ_KINDS][IPCT_SLOTS];
struct ipct_mq mq[IPCT_MQ_KINDS];
__u64 dropped;	/* map updates that failed (map full) */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct ipct_chan);
} channels SEC(".maps");

/* Send timestamps of messages not yet received (LRU: broadcast messages
 * stay until evicted, as any number of receivers may read them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ipct_msg_key);
	__type(value, __u64);
} sent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct ipct_mq_call);
} mq_pending SEC(".maps");

static __always_inline int wanted(void)
{
	return !filter_tgid || (bpf_get_current_pid_tgid() >> 32) == filter_tgid;
}

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r < IPCT_SLOTS ? r : IPCT_SLOTS - 1;
}

static __always_inline struct ipct_chan *chan_stats(__u32 id)
{
	struct ipct_chan *c = bpf_map_lookup_elem(&channels, &id);

	if (c)
		return c;
	struct ipct_chan zero = {};
	if (bpf_map_update_elem(&channels, &id, &zero, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&channels, &id)) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	return bpf_map_lookup_elem(&channels, &id);
}

static __always_inline __u32 mode_of(__u32 flags)
{
	if (flags & f_broadcast)
		return IPCT_MODE_BROADCAST;
	if (flags & f_multicast)
		return IPCT_MODE_MULTICAST;
	return IPCT_MODE_UNICAST;
}

SEC("tracepoint/io_uring/io_uring_ipc_send")
int ipct_send(struct trace_event_raw_io_uring_ipc_msg *e)
{
	__u64 now = bpf_ktime_get_ns();
	struct ipct_chan *c;
	__u64 seq = 0;
	int res;

	if (!wanted())
		return 0;
	c = chan_stats(e->channel_id);
	if (!c)
		return 0;
	if (bpf_core_field_exists(e->channel_flags)) {
		c->flags = e->channel_flags;
		c->flags_known = 1;
	}
	res = e->res;
	if (res >= 0) {
		__sync_fetch_and_add(&c->sends, 1);
		__sync_fetch_and_add(&c->send_bytes, res);
	} else if (res == -ENOBUFS) {
		__sync_fetch_and_add(&c->send_enobufs, 1);
	} else if (res == -EPIPE) {
		__sync_fetch_and_add(&c->send_epipe, 1);
	} else {
		__sync_fetch_and_add(&c->send_other_err, 1);
	}
	if (res < 0 || !bpf_core_field_exists(e->seq))
		return 0;
	seq = e->seq;
	struct ipct_msg_key k = { .channel_id = e->channel_id, .seq = seq };
	if (bpf_map_update_elem(&sent, &k, &now, BPF_ANY))
		__sync_fetch_and_add(&dropped, 1);
	return 0;
}

SEC("tracepoint/io_uring/io_uring_ipc_recv")
int ipct_recv(struct trace_event_raw_io_uring_ipc_msg *e)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 mode = IPCT_MODE_UNKNOWN;
	struct ipct_chan *c;
	__u64 *sent_ns;
	int res;

	if (!wanted())
		return 0;
	c = chan_stats(e->channel_id);
	if (!c)
		return 0;
	if (bpf_core_field_exists(e->channel_flags)) {
		c->flags = e->channel_flags;
		c->flags_known = 1;
		mode = mode_of(e->channel_flags);
	}
	res = e->res;
	if (res >= 0) {
		__sync_fetch_and_add(&c->recvs, 1);
		__sync_fetch_and_add(&c->recv_bytes, res);
	} else if (res == -EAGAIN) {
		__sync_fetch_and_add(&c->recv_eagain, 1);
	} else if (res == -EPIPE) {
		__sync_fetch_and_add(&c->recv_epipe, 1);
	} else {
		__sync_fetch_and_add(&c->recv_other_err, 1);
	}
	if (res < 0 || !bpf_core_field_exists(e->seq))
		return 0;
	struct ipct_msg_key k = { .channel_id = e->channel_id, .seq = e->seq };
	sent_ns = bpf_map_lookup_elem(&sent, &k);
	if (!sent_ns) {
		/* Sent before tracing started, evicted, or the receive
		 * completed before the send's tracepoint fired. */
		__sync_fetch_and_add(&c->lat_unmatched, 1);
		return 0;
	}
	__u64 delta = now > *sent_ns ? now - *sent_ns : 0;
	__sync_fetch_and_add(&c->lat_matched, 1);
	__sync_fetch_and_add(&ipc_lat[mode & (IPCT_MODES - 1)][log2_slot(delta)], 1);
	/* Only a broadcast message has more than one receiver. */
	if (mode != IPCT_MODE_BROADCAST)
		bpf_map_delete_elem(&sent, &k);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int ipct_sys_enter(struct trace_event_raw_sys_enter *e)
{
	if (mq_syscall_nr < 0 || e->id != mq_syscall_nr || !wanted())
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct ipct_mq_call call = {
		.start_ns = bpf_ktime_get_ns(),
		.flags = e->args[2],
	};
	if (bpf_map_update_elem(&mq_pending, &id, &call, BPF_ANY))
		__sync_fetch_and_add(&dropped, 1);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int ipct_sys_exit(struct trace_event_raw_sys_exit *e)
{
	if (mq_syscall_nr < 0 || e->id != mq_syscall_nr)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct ipct_mq_call *call = bpf_map_lookup_elem(&mq_pending, &id);
	if (!call)
		return 0;
	__u64 delta = bpf_ktime_get_ns() - call->start_ns;
	__u32 kind = (call->flags & mq_peek_flag) ? IPCT_MQ_PEEK : IPCT_MQ_RECEIVE;
	long ret = e->ret;

	bpf_map_delete_elem(&mq_pending, &id);
	struct ipct_mq *m = &mq[kind & 1];
	__sync_fetch_and_add(&m->calls, 1);
	if (ret >= 0)
		__sync_fetch_and_add(&m->bytes, ret);
	else if (ret == -EAGAIN)
		__sync_fetch_and_add(&m->eagain, 1);
	else
		__sync_fetch_and_add(&m->other_err, 1);
	__sync_fetch_and_add(&mq_lat[kind & 1][log2_slot(delta)], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
