//! From a kernel future to a Python awaitable, without blocking the event loop.
//!
//! A call creates an `asyncio.Future` on the caller's running loop and spawns the kernel future on
//! the kernel's own tokio runtime (its worker threads, not the loop's thread). When the kernel
//! future finishes, the worker attaches to the interpreter, converts the result (or builds the
//! exception) and hands it to the loop with `loop.call_soon_threadsafe`, the one thread-safe entry
//! into asyncio. The loop sets the future's result there, unless the future was cancelled first.
//!
//! Cancelling the awaiting task does not abort the kernel command: a command commits its state and
//! its audit record together or not at all, so it either completes (and the record says so) or
//! fails as a whole; the result is then dropped. This is why no extra crate
//! (pyo3-async-runtimes) is needed: one future, one callback.

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::{Failure, Family};

/// Every live kernel runtime, weakly: the list the interpreter's exit hook drains. It holds no
/// service state (each kernel still owns its store, keys and runtime); it exists because CPython
/// 3.11 kills a thread that waits for the interpreter during finalisation, which aborts the
/// process if that thread is a runtime worker delivering a result. The exit hook (registered
/// with `atexit` at import, which runs before finalisation) stops every runtime first.
static LIVE: Mutex<Vec<Weak<Runtime>>> = Mutex::new(Vec::new());

/// How long the exit hook waits for in-flight kernel commands to finish.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The kernel's tokio runtime, shut down when the last service that uses it is dropped, or at
/// interpreter exit, whichever comes first.
#[derive(Debug)]
pub struct Runtime {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Runtime {
    /// A multi-threaded runtime with two workers (the kernel's work is I/O bound: SQLite's writer
    /// has its own thread), registered for the exit hook.
    pub fn new() -> Result<Arc<Self>, Failure> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("airisk-kernel")
            .enable_all()
            .build()
            .map_err(|e| {
                Failure::new(
                    Family::Configuration,
                    "runtime",
                    format!("could not start the kernel's runtime: {e}"),
                )
            })?;
        let runtime = Arc::new(Runtime {
            runtime: Mutex::new(Some(runtime)),
        });
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&runtime));
        }
        Ok(runtime)
    }

    /// A handle to spawn on, or an error once the runtime is shut down.
    fn handle(&self) -> Result<tokio::runtime::Handle, Failure> {
        self.runtime
            .lock()
            .ok()
            .and_then(|rt| rt.as_ref().map(|rt| rt.handle().clone()))
            .ok_or_else(|| {
                Failure::new(
                    Family::Configuration,
                    "closed",
                    "the kernel's runtime is shut down (the interpreter is exiting)",
                )
            })
    }

    fn take(&self) -> Option<tokio::runtime::Runtime> {
        self.runtime.lock().ok().and_then(|mut rt| rt.take())
    }
}

impl Drop for Runtime {
    /// Stops the workers. From Python code (the usual case) it waits, with the interpreter
    /// released, until they have stopped: a worker may be inside a result delivery and must not
    /// be left running into interpreter finalisation. On a worker itself (its delivery released
    /// the last reference to a service, e.g. through a traceback) it cannot wait for itself, so
    /// it only signals the others.
    fn drop(&mut self) {
        if let Some(rt) = self.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                Python::attach(|py| py.detach(|| rt.shutdown_timeout(EXIT_GRACE)));
            }
        }
    }
}

/// The exit hook: stops every live runtime, with the interpreter released so a worker that is
/// delivering a result can finish.
#[pyfunction]
pub fn _airisk_shutdown(py: Python<'_>) {
    let runtimes: Vec<tokio::runtime::Runtime> = LIVE
        .lock()
        .map(|mut live| {
            live.drain(..)
                .filter_map(|w| w.upgrade())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.take())
        .collect();
    py.detach(|| {
        for rt in runtimes {
            rt.shutdown_timeout(EXIT_GRACE);
        }
    });
}

/// What every service holds: the runtime its futures run on.
#[derive(Debug, Clone)]
pub struct Bridge {
    runtime: Arc<Runtime>,
    resolve: Arc<Py<PyAny>>,
}

/// Sets `fut`'s result or exception, on the loop's thread, unless it is already done (cancelled).
#[pyfunction]
fn _airisk_resolve(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

impl Bridge {
    /// A bridge over `runtime`.
    ///
    /// # Errors
    /// If the resolver function cannot be created (out of memory).
    pub fn new(py: Python<'_>, runtime: Arc<Runtime>) -> PyResult<Self> {
        let resolve = wrap_pyfunction!(_airisk_resolve, py)?.into_any().unbind();
        Ok(Bridge {
            runtime,
            resolve: Arc::new(resolve),
        })
    }

    /// Runs `fut` to completion on the runtime, blocking the caller with the interpreter released.
    /// For construction only (`airisk.open`), never for service calls.
    pub fn block_on<T: Send, F: Future<Output = T> + Send>(
        &self,
        py: Python<'_>,
        fut: F,
    ) -> Result<T, Failure> {
        let rt = self.runtime.handle()?;
        Ok(py.detach(|| rt.block_on(fut)))
    }

    /// An awaitable (an `asyncio.Future` of the running loop) for `fut`, run on the runtime;
    /// `convert` turns its success value into a Python object on delivery.
    ///
    /// # Errors
    /// `RuntimeError` when called outside a running event loop.
    pub fn awaitable<'py, T, F, C>(
        &self,
        py: Python<'py>,
        fut: F,
        convert: C,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Failure>> + Send + 'static,
        C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let py_future = event_loop.call_method0("create_future")?;
        let loop_ref: Py<PyAny> = event_loop.unbind();
        let future_ref: Py<PyAny> = py_future.clone().unbind();
        let resolve = self.resolve.clone();
        let rt = self.runtime.handle()?;
        rt.spawn(async move {
            let outcome = fut.await;
            Python::attach(|py| {
                let delivered = match outcome {
                    Ok(value) => convert(py, value),
                    Err(failure) => Err(failure.into_pyerr(py)),
                };
                let (ok, value): (bool, Py<PyAny>) = match delivered {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                // Fails only when the loop is closed: then nobody awaits the result any more.
                let _ = loop_ref.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (resolve.clone_ref(py), future_ref, ok, value),
                );
            });
        });
        Ok(py_future)
    }
}
