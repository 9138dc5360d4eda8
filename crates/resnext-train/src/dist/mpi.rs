//! The MPI engine (feature `mpi`): rsmpi over the system's MPI library (OpenMPI from Debian:
//! `cargo xtask setup --mpi`). Launch with `mpirun -np N`, `srun`, or `mpirun --hostfile`.
//!
//! MPI's default error handler aborts the whole job on a communication failure, and a process
//! that returns an error calls [`MpiJob::abort`]: either way no rank waits forever on a dead peer.

use super::{Collective, Comm};
use crate::error::TrainError;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::sync::Arc;

/// The largest message of one call: MPI counts are C ints.
const CHUNK: usize = 1 << 30;

/// The world communicator's rank and size; every call uses `MPI_COMM_WORLD`.
#[derive(Debug)]
pub struct Mpi {
    rank: usize,
    size: usize,
}

/// MPI, initialised; finalised when dropped (at the end of `main`).
pub struct MpiJob {
    _universe: Universe,
    comm: Arc<Mpi>,
}

impl std::fmt::Debug for MpiJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiJob").field("comm", &self.comm).finish()
    }
}

impl MpiJob {
    /// Initialises MPI (serialised threading: the training thread is the only one that calls
    /// it, and it need not be the main thread).
    pub fn init() -> Result<Self, TrainError> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Serialized).ok_or_else(|| {
                TrainError::Dist("MPI was already initialised in this process".into())
            })?;
        let world = universe.world();
        let comm = Arc::new(Mpi {
            rank: world.rank() as usize,
            size: world.size() as usize,
        });
        Ok(Self {
            _universe: universe,
            comm,
        })
    }

    pub fn comm(&self) -> Comm {
        self.comm.clone()
    }

    /// Ends every process of the job with `code` (`MPI_Abort`); the launcher reports it.
    pub fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn engine(&self) -> &'static str {
        "mpi"
    }

    fn broadcast(&self, data: &mut Vec<u8>) -> Result<(), TrainError> {
        let world = SimpleCommunicator::world();
        let root = world.process_at_rank(0);
        let mut len = data.len() as u64;
        root.broadcast_into(&mut len);
        let len = usize::try_from(len)
            .map_err(|_| TrainError::Dist(format!("a broadcast of {len} bytes")))?;
        data.resize(len, 0);
        for chunk in data.chunks_mut(CHUNK) {
            root.broadcast_into(chunk);
        }
        Ok(())
    }

    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<(), TrainError> {
        if send.len() != recv.len() {
            return Err(TrainError::Dist(format!(
                "a sum of {} values into {}",
                send.len(),
                recv.len()
            )));
        }
        let world = SimpleCommunicator::world();
        for (s, r) in send.chunks(CHUNK / 4).zip(recv.chunks_mut(CHUNK / 4)) {
            world.all_reduce_into(s, r, SystemOperation::sum());
        }
        Ok(())
    }

    fn sum_f64(&self, data: &mut [f64]) -> Result<(), TrainError> {
        let world = SimpleCommunicator::world();
        for chunk in data.chunks_mut(CHUNK / 8) {
            let send = chunk.to_vec();
            world.all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
        Ok(())
    }

    fn gather_f64(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, TrainError> {
        let world = SimpleCommunicator::world();
        let n = i32::try_from(local.len())
            .map_err(|_| TrainError::Dist(format!("a gather of {} values", local.len())))?;
        let mut counts = vec![0i32; self.size];
        world.all_gather_into(&n, &mut counts[..]);
        let displs: Vec<i32> = counts
            .iter()
            // each rank's offset: the counts before it
            .scan(0i32, |at, &c| Some(std::mem::replace(at, *at + c)))
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0f64; total];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(local, &mut part);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect())
    }
}
