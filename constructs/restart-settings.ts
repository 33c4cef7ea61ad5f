/**
 * Which postgresql.conf parameters take effect only when the server restarts: those whose
 * context is `postmaster` (`select name from pg_settings where context = 'postmaster'`). A change
 * to one of them rolls the pods (PostgresConfig.checksum); a change to any other is applied in
 * place by the sidecar's reload (archiver/src/daemon/config-reload.ts), without a restart.
 *
 * The tables are PostgreSQL 15's pg_settings, lowercased (the server here; a real-PostgreSQL test
 * compares them with it, so they cannot rot), plus what PostgreSQL 13, 14, 16 and 17 do
 * differently, from their release notes and guc_tables.c. A parameter in no table for the version
 * (a custom one such as `auto_explain.log_min_duration`, a newer one, a misspelt one) counts as
 * needing a restart: a needless restart is cheaper than a setting that silently does not apply.
 * Parameters of context `internal` cannot be set at all; they count as needing a restart too.
 */

/** The versions the tables describe. */
export const RESTART_TABLE_VERSIONS: readonly number[] = [13, 14, 15, 16, 17];

/** PostgreSQL 15's parameters of context `postmaster`: a change needs a restart. */
export const RESTART_SETTINGS_15: ReadonlySet<string> = new Set([
  'archive_mode', 'autovacuum_freeze_max_age', 'autovacuum_max_workers',
  'autovacuum_multixact_freeze_max_age', 'bonjour', 'bonjour_name', 'cluster_name', 'config_file',
  'data_directory', 'data_sync_retry', 'dynamic_shared_memory_type', 'event_source',
  'external_pid_file', 'hba_file', 'hot_standby', 'huge_page_size', 'huge_pages', 'ident_file',
  'ignore_invalid_pages', 'jit_provider', 'listen_addresses', 'logging_collector',
  'max_connections', 'max_files_per_process', 'max_locks_per_transaction',
  'max_logical_replication_workers', 'max_pred_locks_per_transaction', 'max_prepared_transactions',
  'max_replication_slots', 'max_wal_senders', 'max_worker_processes', 'min_dynamic_shared_memory',
  'old_snapshot_threshold', 'port', 'recovery_target', 'recovery_target_action',
  'recovery_target_inclusive', 'recovery_target_lsn', 'recovery_target_name',
  'recovery_target_time', 'recovery_target_timeline', 'recovery_target_xid', 'shared_buffers',
  'shared_memory_type', 'shared_preload_libraries', 'superuser_reserved_connections',
  'track_activity_query_size', 'track_commit_timestamp', 'unix_socket_directories',
  'unix_socket_group', 'unix_socket_permissions', 'wal_buffers', 'wal_decode_buffer_size',
  'wal_level', 'wal_log_hints',
]);

/**
 * PostgreSQL 15's parameters of context sighup, superuser, user, backend and superuser-backend:
 * a reload applies a change (backend and superuser-backend: to the sessions opened after it).
 */
export const RELOADABLE_SETTINGS_15: ReadonlySet<string> = new Set([
  'allow_in_place_tablespaces', 'allow_system_table_mods', 'application_name',
  'archive_cleanup_command', 'archive_command', 'archive_library', 'archive_timeout',
  'array_nulls', 'authentication_timeout', 'autovacuum', 'autovacuum_analyze_scale_factor',
  'autovacuum_analyze_threshold', 'autovacuum_naptime', 'autovacuum_vacuum_cost_delay',
  'autovacuum_vacuum_cost_limit', 'autovacuum_vacuum_insert_scale_factor',
  'autovacuum_vacuum_insert_threshold', 'autovacuum_vacuum_scale_factor',
  'autovacuum_vacuum_threshold', 'autovacuum_work_mem', 'backend_flush_after', 'backslash_quote',
  'backtrace_functions', 'bgwriter_delay', 'bgwriter_flush_after', 'bgwriter_lru_maxpages',
  'bgwriter_lru_multiplier', 'bytea_output', 'check_function_bodies',
  'checkpoint_completion_target', 'checkpoint_flush_after', 'checkpoint_timeout',
  'checkpoint_warning', 'client_connection_check_interval', 'client_encoding',
  'client_min_messages', 'commit_delay', 'commit_siblings', 'compute_query_id',
  'constraint_exclusion', 'cpu_index_tuple_cost', 'cpu_operator_cost', 'cpu_tuple_cost',
  'cursor_tuple_fraction', 'datestyle', 'db_user_namespace', 'deadlock_timeout',
  'debug_discard_caches', 'debug_pretty_print', 'debug_print_parse', 'debug_print_plan',
  'debug_print_rewritten', 'default_statistics_target', 'default_table_access_method',
  'default_tablespace', 'default_text_search_config', 'default_toast_compression',
  'default_transaction_deferrable', 'default_transaction_isolation',
  'default_transaction_read_only', 'dynamic_library_path', 'effective_cache_size',
  'effective_io_concurrency', 'enable_async_append', 'enable_bitmapscan', 'enable_gathermerge',
  'enable_hashagg', 'enable_hashjoin', 'enable_incremental_sort', 'enable_indexonlyscan',
  'enable_indexscan', 'enable_material', 'enable_memoize', 'enable_mergejoin', 'enable_nestloop',
  'enable_parallel_append', 'enable_parallel_hash', 'enable_partition_pruning',
  'enable_partitionwise_aggregate', 'enable_partitionwise_join', 'enable_seqscan', 'enable_sort',
  'enable_tidscan', 'escape_string_warning', 'exit_on_error', 'extension_destdir',
  'extra_float_digits', 'force_parallel_mode', 'from_collapse_limit', 'fsync', 'full_page_writes',
  'geqo', 'geqo_effort', 'geqo_generations', 'geqo_pool_size', 'geqo_seed', 'geqo_selection_bias',
  'geqo_threshold', 'gin_fuzzy_search_limit', 'gin_pending_list_limit', 'hash_mem_multiplier',
  'hot_standby_feedback', 'idle_in_transaction_session_timeout', 'idle_session_timeout',
  'ignore_checksum_failure', 'ignore_system_indexes', 'intervalstyle', 'jit', 'jit_above_cost',
  'jit_debugging_support', 'jit_dump_bitcode', 'jit_expressions', 'jit_inline_above_cost',
  'jit_optimize_above_cost', 'jit_profiling_support', 'jit_tuple_deforming', 'join_collapse_limit',
  'krb_caseins_users', 'krb_server_keyfile', 'lc_messages', 'lc_monetary', 'lc_numeric', 'lc_time',
  'lo_compat_privileges', 'local_preload_libraries', 'lock_timeout', 'log_autovacuum_min_duration',
  'log_checkpoints', 'log_connections', 'log_destination', 'log_directory', 'log_disconnections',
  'log_duration', 'log_error_verbosity', 'log_executor_stats', 'log_file_mode', 'log_filename',
  'log_hostname', 'log_line_prefix', 'log_lock_waits', 'log_min_duration_sample',
  'log_min_duration_statement', 'log_min_error_statement', 'log_min_messages',
  'log_parameter_max_length', 'log_parameter_max_length_on_error', 'log_parser_stats',
  'log_planner_stats', 'log_recovery_conflict_waits', 'log_replication_commands',
  'log_rotation_age', 'log_rotation_size', 'log_startup_progress_interval', 'log_statement',
  'log_statement_sample_rate', 'log_statement_stats', 'log_temp_files', 'log_timezone',
  'log_transaction_sample_rate', 'log_truncate_on_rotation', 'logical_decoding_work_mem',
  'maintenance_io_concurrency', 'maintenance_work_mem', 'max_parallel_maintenance_workers',
  'max_parallel_workers', 'max_parallel_workers_per_gather', 'max_pred_locks_per_page',
  'max_pred_locks_per_relation', 'max_slot_wal_keep_size', 'max_stack_depth',
  'max_standby_archive_delay', 'max_standby_streaming_delay', 'max_sync_workers_per_subscription',
  'max_wal_size', 'min_parallel_index_scan_size', 'min_parallel_table_scan_size', 'min_wal_size',
  'parallel_leader_participation', 'parallel_setup_cost', 'parallel_tuple_cost',
  'password_encryption', 'plan_cache_mode', 'post_auth_delay', 'pre_auth_delay',
  'primary_conninfo', 'primary_slot_name', 'promote_trigger_file', 'quote_all_identifiers',
  'random_page_cost', 'recovery_end_command', 'recovery_init_sync_method',
  'recovery_min_apply_delay', 'recovery_prefetch', 'recursive_worktable_factor',
  'remove_temp_files_after_crash', 'restart_after_crash', 'restore_command',
  'restrict_nonsystem_relation_kind', 'row_security', 'search_path', 'seq_page_cost',
  'session_preload_libraries', 'session_replication_role', 'ssl', 'ssl_ca_file', 'ssl_cert_file',
  'ssl_ciphers', 'ssl_crl_dir', 'ssl_crl_file', 'ssl_dh_params_file', 'ssl_ecdh_curve',
  'ssl_key_file', 'ssl_max_protocol_version', 'ssl_min_protocol_version', 'ssl_passphrase_command',
  'ssl_passphrase_command_supports_reload', 'ssl_prefer_server_ciphers',
  'standard_conforming_strings', 'statement_timeout', 'stats_fetch_consistency',
  'synchronize_seqscans', 'synchronous_commit', 'synchronous_standby_names', 'syslog_facility',
  'syslog_ident', 'syslog_sequence_numbers', 'syslog_split_messages', 'tcp_keepalives_count',
  'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_user_timeout', 'temp_buffers',
  'temp_file_limit', 'temp_tablespaces', 'timezone', 'timezone_abbreviations', 'trace_notify',
  'trace_recovery_messages', 'trace_sort', 'track_activities', 'track_counts', 'track_functions',
  'track_io_timing', 'track_wal_io_timing', 'transaction_deferrable', 'transaction_isolation',
  'transaction_read_only', 'transform_null_equals', 'update_process_title', 'vacuum_cost_delay',
  'vacuum_cost_limit', 'vacuum_cost_page_dirty', 'vacuum_cost_page_hit', 'vacuum_cost_page_miss',
  'vacuum_defer_cleanup_age', 'vacuum_failsafe_age', 'vacuum_freeze_min_age',
  'vacuum_freeze_table_age', 'vacuum_multixact_failsafe_age', 'vacuum_multixact_freeze_min_age',
  'vacuum_multixact_freeze_table_age', 'wal_compression', 'wal_consistency_checking',
  'wal_init_zero', 'wal_keep_size', 'wal_receiver_create_temp_slot',
  'wal_receiver_status_interval', 'wal_receiver_timeout', 'wal_recycle',
  'wal_retrieve_retry_interval', 'wal_sender_timeout', 'wal_skip_threshold', 'wal_sync_method',
  'wal_writer_delay', 'wal_writer_flush_after', 'work_mem', 'xmlbinary', 'xmloption',
  'zero_damaged_pages',
]);

/** Parameters that need a restart in other versions only: the versions where they do. */
export const RESTART_SETTINGS_ELSEWHERE: Readonly<Record<string, readonly number[]>> = {
  // Reloadable since 14 (restore_command changes "during a server reload").
  restore_command: [13],
  reserved_connections: [16, 17],
  debug_io_direct: [16, 17],
  // 17's SLRU cache sizes, the NOTIFY queue's size and a developer trace.
  commit_timestamp_buffers: [17],
  multixact_member_buffers: [17],
  multixact_offset_buffers: [17],
  notify_buffers: [17],
  serializable_buffers: [17],
  subtransaction_buffers: [17],
  transaction_buffers: [17],
  max_notify_queue_pages: [17],
  trace_connection_negotiation: [17],
};

/** Reloadable parameters that PostgreSQL 15 does not have: the versions that have them. */
export const RELOADABLE_SETTINGS_ELSEWHERE: Readonly<Record<string, readonly number[]>> = {
  // Removed in 15.
  stats_temp_directory: [13, 14],
  // Removed in 14.
  operator_precedence_warning: [13],
  vacuum_cleanup_index_scale_factor: [13],
  // New in 16.
  createrole_self_grant: [16, 17],
  debug_logical_replication_streaming: [16, 17],
  debug_parallel_query: [16, 17],
  enable_presorted_aggregate: [16, 17],
  gss_accept_delegation: [16, 17],
  icu_validation_level: [16, 17],
  max_parallel_apply_workers_per_subscription: [16, 17],
  scram_iterations: [16, 17],
  send_abort_for_crash: [16, 17],
  send_abort_for_kill: [16, 17],
  vacuum_buffer_usage_limit: [16, 17],
  // New in 17.
  allow_alter_system: [17],
  enable_group_by_reordering: [17],
  event_triggers: [17],
  io_combine_limit: [17],
  summarize_wal: [17],
  sync_replication_slots: [17],
  synchronized_standby_slots: [17],
  transaction_timeout: [17],
  wal_summary_keep_time: [17],
};

/** Reloadable parameters of 15 that later versions removed: the first version without them. */
export const RELOADABLE_SETTINGS_REMOVED_AFTER_15: Readonly<Record<string, number>> = {
  force_parallel_mode: 16, // renamed debug_parallel_query
  promote_trigger_file: 16,
  vacuum_defer_cleanup_age: 16,
  db_user_namespace: 17,
  trace_recovery_messages: 17,
};

/**
 * Whether a change of parameter `name` takes effect only at a restart of a PostgreSQL `version`
 * server. Names are case-insensitive, as PostgreSQL's are. Unknown parameters, and every parameter
 * of a version outside RESTART_TABLE_VERSIONS, need a restart (see the module's comment).
 */
export function needsRestart(name: string, version: number): boolean {
  const key = name.toLowerCase();
  if (!RESTART_TABLE_VERSIONS.includes(version)) return true;
  if (RESTART_SETTINGS_ELSEWHERE[key]?.includes(version)) return true;
  if (RELOADABLE_SETTINGS_ELSEWHERE[key]?.includes(version)) return false;
  if (!RELOADABLE_SETTINGS_15.has(key)) return true;
  const removedIn = RELOADABLE_SETTINGS_REMOVED_AFTER_15[key];
  return removedIn !== undefined && version >= removedIn;
}
