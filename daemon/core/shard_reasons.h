/* The reasons a keyed actor stops with when its shard leaves this node: the core tells
 * them apart from failures (the actor moved; nothing restarts it here), the lease
 * manager (daemon/keyed/shard.c) passes them to on_lost. */
#ifndef AXD_SHARD_REASONS_H
#define AXD_SHARD_REASONS_H

#define AXD_SHARD_LOST "lease_lost"   /* renew refused, or not confirmed by the local deadline */
#define AXD_SHARD_HANDOVER "handover" /* released to rebalance (more live nodes) */
#define AXD_SHARD_SHUTDOWN "shutdown" /* axd_shards_stop */
#define AXD_SHARD_REGRESSED "store_regressed" /* a newer epoch exists than the one we hold: the
                                               * store went back in time (restore, failover) */

#endif
