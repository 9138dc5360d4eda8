//! `resnext serve`: a run (or bare weights) behind the HTTP API and page of `resnext-serve`.
//! Prints the URL once the model is loaded; SIGINT, SIGTERM or SIGHUP drain and exit 0.

use crate::args::ServeArgs;
use anyhow::{Context, Result};
use resnext_serve::{ServeConfig, Server};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let opts = a.numerics.resolve(false)?;
    let config = ServeConfig {
        addr: a.addr,
        max_batch: a.max_batch,
        max_wait: Duration::from_millis(a.max_wait_ms),
        queue: usize::from(a.queue),
        max_body: a.max_body,
        api_key: a.api_key.clone(),
        cors: a.cors.clone(),
        request_timeout: Duration::from_secs(a.timeout_s),
        header_timeout: Duration::from_secs(a.timeout_s.clamp(1, 10)),
        ..ServeConfig::default()
    };
    config.validate()?;
    let what = match (&a.source.run, &a.source.weights) {
        (Some(r), _) => r.display().to_string(),
        (None, Some(w)) => w.display().to_string(),
        (None, None) => anyhow::bail!("give --run DIR or --weights FILE"),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(4))
        .max_blocking_threads(cores.max(2))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        // handlers first: a signal while the model loads drains (an empty server) too
        let shutdown = shutdown_signal();
        crate::interrupt::release_stop_signals();
        let server = Server::bind(config, move || -> Result<_> {
            let p = crate::source::load_source(&a.source, opts)?
                .predictor
                .with_batch_size(a.max_batch);
            if a.fold_bn {
                Ok(p.with_folded_batchnorm()?)
            } else {
                Ok(p)
            }
        })
        .await?;
        let addr = server.local_addr()?;
        let mut ready = server.ready();
        let serving = server.run(shutdown);
        tokio::pin!(serving);
        tokio::select! {
            meta = ready.wait() => {
                let meta = meta?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "serving {what} ({} classes) on http://{addr}/ (Ctrl-C to stop)",
                    meta.classes.len()
                )?;
                out.flush()?;
            }
            r = &mut serving => {
                r?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        serving.await?;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGINT, SIGTERM or SIGHUP (a closed terminal, or a supervisor's "stop"): all three drain.
/// The handlers are installed when this is called; the future completes at the first signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        )
    };
    async move {
        #[cfg(unix)]
        match streams {
            (Ok(mut term), Ok(mut int), Ok(mut hup)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            _ => {
                // no signal handling: serve until killed
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        eprintln!("shutting down: finishing the requests in flight");
    }
}
