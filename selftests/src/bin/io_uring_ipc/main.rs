//! io_uring IPC channels: IORING_OP_IPC_SEND / IORING_OP_IPC_RECV and the
//! IORING_REGISTER_IPC_CHANNEL_* commands. Skips on kernels without them.
//!
//! The cases are grouped by topic, one module each, and run in the order
//! of the list in main().

use liburing_ipc::Ring;
use selftests::{cases, Suite};

mod access;
mod blocking;
mod create;
mod delivery;
mod faults;
mod lifetime;
mod multishot;
mod observability;
mod poll;
mod rings;

fn probe() -> Result<(), String> {
    let ring = match Ring::new(4) {
        Ok(r) => r,
        Err(e) => return Err(format!("io_uring unavailable: {e}")),
    };
    match ring.ipc_supported() {
        Ok(true) => Ok(()),
        Ok(false) => Err("the kernel does not support IORING_OP_IPC_SEND/RECV".into()),
        Err(e) => Err(format!("probe failed: {e}")),
    }
}

fn main() {
    Suite::new(
        "io_uring_ipc",
        cases![
            create: [
                create_rejects_bad_arguments,
                attach_returns_cloexec_readonly_fd,
                subscriber_limit_is_enospc,
                memlock_limit_stops_channel_creation,
            ],
            delivery: [
                unicast_fifo_order,
                late_receiver_takes_queued_messages,
                unicast_each_message_once,
                broadcast_reaches_every_receiver,
                broadcast_slot_freed_after_all_receivers,
                multicast_distributes_each_message_once,
                targeted_send_reaches_only_target,
                truncation_is_visible,
                oversized_send_is_emsgsize,
                multi_producer_stress,
            ],
            access: [
                subscriber_rights_are_enforced,
                permission_denied_for_other_uid,
                private_channel_stays_in_process,
                sender_credentials_and_user_data,
                credentials_from_another_process,
                sender_pid_outlives_the_sender,
                ipc_namespace_isolation,
                ring_stays_in_one_ipc_namespace,
            ],
            blocking: [
                blocking_recv_woken_by_other_process,
                recv_nonblock_on_empty_is_eagain,
                recv_link_timeout_cancels_waiting_recv,
                async_cancel_of_waiting_recv,
                full_ring_is_enobufs_and_send_wait_waits,
                send_waits_complete_in_submission_order,
                message_wakes_one_parked_recv,
                recv_handed_a_message_completes_with_it,
                messages_skip_a_cancelled_recv,
                parked_recv_survives_wakeups_without_messages,
                link_timeout_after_wakeups_without_messages,
                unicast_many_receivers_each_message_once,
            ],
            poll: [
                epoll_mod_and_hup,
                sender_detach_is_not_hup_for_others,
                epoll_exclusive_waiter_does_not_strand_recv,
            ],
            rings: [
                single_issuer_defer_taskrun_ring,
                sqpoll_ring_send_recv,
                ipc_ops_rejected_on_iopoll_ring,
            ],
            lifetime: [
                destroy_wakes_waiters_with_epipe,
                destroy_is_creator_only,
                creator_exit_completes_waiters,
                ring_exit_detaches_its_subscribers,
                detach_then_ops_fail,
                multicast_detach_hands_messages_on,
                fork_shares_the_ring,
                close_channel_fd_with_recv_in_flight,
            ],
            faults: [
                recv_into_unfaulted_buffer,
                send_from_unfaulted_buffer,
                bad_buffers_change_nothing,
                broadcast_bad_buffer_loses_only_its_copy,
                bad_msg_info_keeps_the_message,
                send_wait_with_vanished_buffer_leaks_no_slot,
                create_fault_leaves_no_channel,
            ],
            observability: [
                mmap_layout_matches_messages,
                mmap_after_detach_is_enoent,
                fdinfo_describes_the_channel,
                tracepoints_report_send_and_recv,
            ],
            multishot: [
                multishot_recv_streams_messages,
                multishot_recv_out_of_buffers_keeps_the_message,
                multishot_recv_without_buffers_is_enobufs,
                multishot_recv_truncates_visibly,
                multishot_recv_rejects_bad_sqes,
                multishot_recv_broadcast_reaches_all,
                multishot_final_cqe_repeats_no_buffer,
                multishot_short_buffer_comes_back,
                multishot_ends_every_way_under_traffic,
            ],
        ],
    )
    .probe(probe)
    .run()
}
