//! `scimdesk bench wave|drain|policy|sync|workbench`: prints the figures (text, or JSON with --json).

use crate::cli::BenchCommand;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output;
use crate::stand_ins::StandInError;
use std::time::Duration;

pub async fn run(cmd: BenchCommand, json: bool) -> CliResult {
    let fail = |e: StandInError| CliError::new(Exit::Internal, format!("benchmark failed: {e}"));
    match cmd {
        BenchCommand::Saml {
            postgres,
            users,
            logins,
            concurrency,
            rate,
            paced_secs,
        } => {
            let r = crate::stand_ins::bench::saml(crate::stand_ins::bench::SamlBenchOptions {
                postgres,
                users,
                logins,
                concurrency,
                rate,
                paced_secs,
            })
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            println!(
                "saml on {}: {} users, assertions signed with RSA-2048 / SHA-256",
                r.backend, r.users
            );
            println!(
                "  verification alone:   p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
                r.verify_ms.p50, r.verify_ms.p95, r.verify_ms.p99
            );
            for (name, f) in [
                ("first logins (users created)", &r.first_logins),
                ("closed loop", &r.saturated),
                ("paced", &r.paced),
            ] {
                println!(
                    "  {name:<29} {:>6} logins, {:>7.0}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, {} errors",
                    f.logins,
                    f.per_sec,
                    f.latency_ms.p50,
                    f.latency_ms.p95,
                    f.latency_ms.p99,
                    f.errors
                );
            }
            println!("  (paced: {} logins/s offered)", r.offered_rate);
            Ok(())
        }
        BenchCommand::Sync {
            postgres,
            users,
            groups,
            changes,
        } => {
            let r = crate::stand_ins::bench::sync(crate::stand_ins::bench::SyncBenchOptions {
                postgres,
                users,
                groups,
                changes,
            })
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            println!(
                "sync on {}: {} users, {} groups nested three deep, {} memberships after flattening",
                r.backend, r.users, r.groups, r.memberships
            );
            println!("  full first sync:                {:.2} s", r.full_secs);
            println!(
                "  full re-sync, nothing changed:  {:.2} s, {} writes",
                r.resync_secs, r.resync_writes
            );
            println!(
                "  incremental poll, no change:    {:.3} s",
                r.idle_incremental_secs
            );
            println!(
                "  incremental sync of one change: p50 {:.3} s, p95 {:.3} s",
                r.incremental_secs.p50, r.incremental_secs.p95
            );
            println!(
                "  change at the source to the application: p50 {:.0} ms, p95 {:.0} ms (plus the poll interval, 5 s by default)",
                r.change_to_target_ms.p50, r.change_to_target_ms.p95
            );
            println!("  peak RSS: {:.0} MB", r.peak_rss_mb);
            Ok(())
        }
        BenchCommand::Wave {
            postgres,
            users,
            groups,
            concurrency,
            rate,
            paced_users,
            settings,
            target_latency_ms,
            target,
        } => {
            let settings: serde_json::Value = serde_json::from_str(&settings)
                .map_err(|e| CliError::invalid(format!("--settings is not JSON: {e}")))?;
            let r = crate::stand_ins::bench::wave(crate::stand_ins::bench::WaveOptions {
                postgres,
                users,
                groups,
                concurrency,
                paced_rate: rate,
                paced_users,
                settings,
                target_latency: Duration::from_millis(target_latency_ms),
                target,
            })
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            println!(
                "wave on {}: {} users, {} groups, target: {:?} (+{} ms per answer)",
                r.backend, r.users, r.groups, r.target, r.target_latency_ms
            );
            println!("  direct push to the target:     {:.2} s", r.direct_secs);
            println!(
                "  inbound server accepting it:   {:.2} s  (no worker running)",
                r.inbound_secs
            );
            println!(
                "  engine delivering it, queued:  {:.2} s  = {:.2}x the direct push",
                r.delivery_secs, r.delivery_vs_direct
            );
            println!(
                "    (of which the queue's own work, measured alone against a no-op target: {:.2} s = {:.2}x the direct push)",
                r.queue_floor_secs, r.queue_floor_vs_direct
            );
            println!(
                "  end to end through scimdesk:   {:.2} s  = {:.0} users/s, {:.2}x the direct push",
                r.engine_secs, r.users_per_sec, r.engine_vs_direct
            );
            println!(
                "    (the identity provider's push to the inbound server took {:.2} s of it; the target got {:.2} requests per user)",
                r.source_push_secs, r.requests_per_user
            );
            let cpu = |c: &crate::stand_ins::bench::CpuPerUser| {
                format!(
                    "{:.3} ms machine, {:.3} ms scimdesk",
                    c.machine_ms, c.scimdesk_ms
                )
            };
            println!(
                "  CPU per user: direct {}; inbound alone {}; engine alone {}; end to end {}",
                cpu(&r.direct_cpu),
                cpu(&r.inbound_cpu),
                cpu(&r.delivery_cpu),
                cpu(&r.engine_cpu)
            );
            println!(
                "  source-to-target latency in the wave: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
                r.wave_latency_ms.p50, r.wave_latency_ms.p95, r.wave_latency_ms.p99
            );
            println!(
                "  at an offered {} users/s: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
                r.paced_rate,
                r.paced_latency_ms.p50,
                r.paced_latency_ms.p95,
                r.paced_latency_ms.p99
            );
            println!("  peak RSS: {:.0} MB", r.peak_rss_mb);
            Ok(())
        }
        BenchCommand::Policy {
            postgres,
            users,
            groups,
        } => {
            let r = crate::stand_ins::bench::policy::policy(postgres.as_deref(), users, groups)
                .await
                .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            println!(
                "policy on {}: {} users, {} groups, {} memberships (loaded in {:.1} s)",
                r.backend, r.users, r.groups, r.memberships, r.load_secs
            );
            println!(
                "  impact of a mapping change: {:.3} s ({} users change roles, {} target operations)",
                r.impact_secs, r.impact_users, r.impact_operations
            );
            println!(
                "  full reconcile, nothing to change: {:.2} s ({} read from the target, {} unchanged, clean: {}, writes sent: {})",
                r.reconcile_secs,
                r.reconcile_remote,
                r.reconcile_unchanged,
                r.reconcile_clean,
                r.reconcile_writes
            );
            println!("  peak RSS: {:.0} MB", r.peak_rss_mb);
            Ok(())
        }
        BenchCommand::Api {
            postgres,
            connections,
            operations,
            concurrency,
            rate,
            seconds,
        } => {
            let r = crate::stand_ins::bench::api(crate::stand_ins::bench::ApiBenchOptions {
                postgres,
                connections,
                operations,
                concurrency,
                rate,
                seconds,
            })
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            let p = |x: &crate::stand_ins::bench::Percentiles| {
                format!(
                    "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                    x.p50, x.p95, x.p99
                )
            };
            println!(
                "api on {}: {} target connections, {} operations stored",
                r.backend, r.connections, r.operations
            );
            println!("  connections with health:        {}", p(&r.connections_ms));
            println!(
                "  operations(first: 100), any page: {}",
                p(&r.operations_page_ms)
            );
            println!(
                "  mutation to subscriber:         {} (the mutation's own round trip: {})",
                p(&r.mutation_to_subscriber_ms),
                p(&r.mutation_ms)
            );
            println!(
                "  sustained: {:.0} requests/s at {concurrency} clients, {}, {} errors",
                r.sustained_rate,
                p(&r.sustained_ms),
                r.sustained_errors
            );
            Ok(())
        }
        BenchCommand::Drain {
            postgres,
            operations,
            concurrency,
            interval,
        } => {
            let r = crate::stand_ins::bench::drain(
                postgres.as_deref(),
                operations,
                concurrency,
                Duration::from_secs(interval.max(1)),
            )
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            println!(
                "drain on {}: {} operations (queued in {:.1} s)",
                r.backend, r.operations, r.enqueue_secs
            );
            println!(
                "  drained in {:.1} s = {:.0} ops/s",
                r.drain_secs, r.ops_per_sec
            );
            let rates: Vec<String> = r.interval_rates.iter().map(|x| format!("{x:.0}")).collect();
            println!("  per {interval} s: {}", rates.join(", "));
            println!("  peak RSS: {:.0} MB", r.peak_rss_mb);
            Ok(())
        }
        BenchCommand::Workbench {
            postgres,
            users,
            operations,
        } => {
            let r = crate::stand_ins::bench::workbench::workbench(
                postgres.as_deref(),
                users,
                operations,
            )
            .await
            .map_err(fail)?;
            if json {
                return output::json(&r);
            }
            let p = &r.probe;
            println!(
                "workbench on {}: {} users, {} queued operations (loaded in {:.1} s)",
                r.backend, r.users, r.operations, r.load_secs
            );
            println!(
                "  start-up to first frame: {:.0} ms; to the first frame with rows: {:.0} ms",
                p.first_frame_ms, p.first_data_frame_ms
            );
            println!(
                "  frame render (160x48, {} frames): p50 {:.2} ms, p99 {:.2} ms",
                p.frames, p.render_ms.p50, p.render_ms.p99
            );
            println!(
                "  key to screen, in memory: p50 {:.2} ms, p99 {:.2} ms",
                p.key_local_ms.p50, p.key_local_ms.p99
            );
            println!(
                "  key to screen, with a read (pane switch, paging): p50 {:.1} ms, p99 {:.1} ms",
                p.key_read_ms.p50, p.key_read_ms.p99
            );
            for f in &p.per_pane {
                println!(
                    "    {:<12} opened in {:.1} ms (median); slowest frame {:.2} ms",
                    f.pane, f.open_p50_ms, f.render_max_ms
                );
            }
            println!(
                "  peak RSS of the workbench process: {:.0} MB",
                p.peak_rss_mb
            );
            Ok(())
        }
        BenchCommand::WorkbenchProbe {
            postgres,
            schema,
            sqlite,
        } => {
            let location = match (postgres, schema, sqlite) {
                (Some(url), Some(schema), None) => {
                    crate::stand_ins::bench::StoreLocation::Schema { url, schema }
                }
                (None, None, Some(path)) => crate::stand_ins::bench::StoreLocation::File(path),
                _ => {
                    return Err(CliError::invalid(
                        "give --postgres URL --schema NAME, or --sqlite PATH",
                    ));
                }
            };
            let r = crate::stand_ins::bench::workbench::probe(location)
                .await
                .map_err(fail)?;
            output::json(&r)
        }
    }
}
