/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Layouts shared by the BPF program and ipc-trace's user space
 * (src/maps.rs mirrors them; a test there pins the sizes).
 */
#ifndef IPC_TRACE_INTF_H
#define IPC_TRACE_INTF_H

/* log2 latency buckets: bucket i counts latencies in [2^i, 2^(i+1)) ns. */
#define IPCT_SLOTS 64

/* Channel delivery modes, indexing ipc_lat[]. */
#define IPCT_MODE_UNICAST 0
#define IPCT_MODE_BROADCAST 1
#define IPCT_MODE_MULTICAST 2
/* The kernel's tracepoint has no channel_flags field. */
#define IPCT_MODE_UNKNOWN 3
#define IPCT_MODES 4

/* mq_timedreceive2() kinds, indexing mq_lat[] and mq[]. */
#define IPCT_MQ_PEEK 0
#define IPCT_MQ_RECEIVE 1
#define IPCT_MQ_KINDS 2

/* Value of the `channels` hash map, keyed by channel id. */
struct ipct_chan {
	__u64 sends;		/* IPC_SEND completions with res >= 0 */
	__u64 send_bytes;
	__u64 send_enobufs;
	__u64 send_epipe;
	__u64 send_other_err;	/* any other res < 0 (ENOENT, EMSGSIZE, ...) */
	__u64 recvs;		/* IPC_RECV completions with res >= 0 */
	__u64 recv_bytes;
	__u64 recv_eagain;
	__u64 recv_epipe;
	__u64 recv_other_err;
	__u64 lat_matched;	/* receives paired with their send */
	__u64 lat_unmatched;	/* receives whose send was not seen */
	__u32 flags;		/* IOIPC_F_* of the channel, when known */
	__u32 flags_known;
};

/* One mq_timedreceive2() kind. */
struct ipct_mq {
	__u64 calls;
	__u64 bytes;		/* sum of non-negative return values */
	__u64 eagain;
	__u64 other_err;
};

/* Key of the `sent` map: a message is (channel, ring sequence number). */
struct ipct_msg_key {
	__u32 channel_id;
	__u32 pad;
	__u64 seq;
};

/* Value of the `mq_pending` map, keyed by pid_tgid. */
struct ipct_mq_call {
	__u64 start_ns;
	__u64 flags;
};

#endif
