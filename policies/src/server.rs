//! A thread-safe front for the [`Engine`]: one background thread owns the engine and steps
//! it while work exists; any number of threads (e.g. rayon rollout workers) call
//! [`EngineClient::generate`], which submits and blocks until that request finishes. Requests
//! arriving while others decode join the running batch at the next step (continuous batching).

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::backend::Backend;
use crate::engine::{Engine, Finished, GenerationRequest, RequestId};
use crate::error::{PolicyError, Result};

/// A request with the channel its result goes back on.
type Job = (GenerationRequest, mpsc::Sender<Result<Finished>>);

/// Cloneable, `Send + Sync` handle to a running engine thread.
#[derive(Clone)]
pub struct EngineClient {
    jobs: mpsc::SyncSender<Job>,
}

/// Owns the engine thread; dropping it (after every client) stops the thread.
pub struct EngineServer {
    client: Option<EngineClient>,
    thread: Option<JoinHandle<()>>,
}

impl EngineServer {
    /// Moves `engine` onto a new thread and returns the server (keep it alive while clients run).
    pub fn spawn<B: Backend>(engine: Engine<B>) -> EngineServer
    where
        B::KvCache: Send,
    {
        let (tx, rx) = mpsc::sync_channel::<Job>(1024);
        let thread = std::thread::Builder::new()
            .name("memrl-engine".into())
            .spawn(move || serve(engine, rx))
            .expect("spawning the engine thread");
        EngineServer { client: Some(EngineClient { jobs: tx }), thread: Some(thread) }
    }

    /// A handle for submitting requests.
    pub fn client(&self) -> EngineClient {
        self.client.clone().expect("server running")
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        self.client = None;
        if let Some(t) = self.thread.take() {
            // The thread exits once every client is dropped; clients held elsewhere keep it alive
            // and are detached here rather than blocking the drop.
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl EngineClient {
    /// Generates for one request, blocking until it finishes.
    pub fn generate(&self, request: GenerationRequest) -> Result<Finished> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send((request, tx))
            .map_err(|_| PolicyError::InvalidRequest("the engine thread has stopped".into()))?;
        rx.recv().map_err(|_| PolicyError::InvalidRequest("the engine thread stopped before answering".into()))?
    }
}

/// The engine thread's loop.
fn serve<B: Backend>(mut engine: Engine<B>, rx: mpsc::Receiver<Job>) {
    let mut waiting: std::collections::HashMap<RequestId, mpsc::Sender<Result<Finished>>> = Default::default();
    let accept = |engine: &mut Engine<B>, waiting: &mut std::collections::HashMap<_, _>, (req, tx): Job| {
        match engine.submit(req) {
            Ok(id) => {
                waiting.insert(id, tx);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    };
    loop {
        if !engine.has_work() {
            // Idle: block for the next request (or exit when all clients are gone).
            match rx.recv() {
                Ok(job) => accept(&mut engine, &mut waiting, job),
                Err(_) => return,
            }
        }
        // Take everything that arrived meanwhile so it joins this step.
        while let Ok(job) = rx.try_recv() {
            accept(&mut engine, &mut waiting, job);
        }
        match engine.step() {
            Ok(done) => {
                for f in done {
                    if let Some(tx) = waiting.remove(&f.id) {
                        let _ = tx.send(Ok(f));
                    }
                }
            }
            Err(e) => {
                // A failed step poisons every request in flight: report and drop them.
                let msg = e.to_string();
                for (_, tx) in waiting.drain() {
                    let _ = tx.send(Err(PolicyError::InvalidRequest(format!("engine step failed: {msg}"))));
                }
                return;
            }
        }
    }
}
