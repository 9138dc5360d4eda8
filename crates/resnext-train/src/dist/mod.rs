//! Data-parallel training across processes: the collective operations the trainer needs, behind
//! one small trait, so that the engine is a choice made at launch.
//!
//! - [`Collective`]: rank, size, broadcast, sums and gathers. [`Single`] is one process (every
//!   operation is a no-op); `Mpi` (feature `mpi`, module [`mpi`]) runs on MPI. A GPU backend
//!   (NCCL) would be one more implementation; it is not written until a GPU machine can test it
//!   (docs/distributed.md).
//! - [`shard`]: which part of a global batch or of the validation set a rank takes.
//! - [`grads`]: gradients summed across processes in buckets of about 25 MB.
//!
//! How a step is split: the config's `batch_size` is the *global* batch. Each epoch's seeded
//! permutation is cut into global batches as on one process; rank `r` of `N` takes the `r`-th
//! contiguous share of each. Every rank scales its loss by its share of the global batch (its
//! images, or its class weights under `loss.class_weights`), so the summed gradients are those of
//! the global batch's mean loss.

pub mod grads;
#[cfg(feature = "mpi")]
pub mod mpi;
pub use resnext_data::shard;

use crate::error::TrainError;
use std::sync::Arc;

/// Collective operations over the processes of one training job. Every process calls the same
/// operations in the same order; a process that fails ends the job (the engine's abort), so
/// none waits forever.
pub trait Collective: Send + Sync {
    /// This process's rank, 0..size.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// The engine, for messages (`single`, `mpi`).
    fn engine(&self) -> &'static str;
    /// Replaces `data` on every rank with rank 0's.
    fn broadcast(&self, data: &mut Vec<u8>) -> Result<(), TrainError>;
    /// Element-wise sums of every rank's `send` into `recv` (of the same length); two buffers,
    /// so that gradients are copied once on the way in and once on the way out.
    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<(), TrainError>;
    /// Element-wise sums over all ranks, in place.
    fn sum_f64(&self, data: &mut [f64]) -> Result<(), TrainError>;
    /// Every rank's `local` (of any length), in rank order.
    fn gather_f64(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, TrainError>;
}

/// One process: rank 0 of 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn engine(&self) -> &'static str {
        "single"
    }
    fn broadcast(&self, _: &mut Vec<u8>) -> Result<(), TrainError> {
        Ok(())
    }
    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<(), TrainError> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn sum_f64(&self, _: &mut [f64]) -> Result<(), TrainError> {
        Ok(())
    }
    fn gather_f64(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, TrainError> {
        Ok(vec![local.to_vec()])
    }
}

/// A shared handle on the job's collective.
pub type Comm = Arc<dyn Collective>;

/// One process.
pub fn single() -> Comm {
    Arc::new(Single)
}

/// Rank and size as a launcher (`mpirun`, `srun`) announces them in the environment, before MPI
/// is initialised; `None` for a plain process. Used to start MPI only under a launcher (a plain
/// process behaves exactly as without MPI), and to refuse a launch by `mpirun` of a binary built
/// without the `mpi` feature (N processes would each train alone into one run directory).
pub fn launcher_env() -> Option<(usize, usize)> {
    launcher_env_from(|k| std::env::var(k).ok())
}

/// [`launcher_env`] with the variables read by `get`.
pub fn launcher_env_from(get: impl Fn(&str) -> Option<String>) -> Option<(usize, usize)> {
    let var = |k: &str| get(k)?.trim().parse::<usize>().ok();
    let pairs = [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMIX_RANK", "PMIX_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
        ("SLURM_PROCID", "SLURM_NTASKS"),
    ];
    pairs
        .into_iter()
        .find_map(|(r, s)| Some((var(r)?, var(s)?)))
        // PMIx launchers (srun --mpi=pmix, prterun) always set PMIX_RANK; the size comes from MPI
        .or_else(|| var("PMIX_RANK").map(|rank| (rank, 0)))
}

/// Adapts a collective to synchronised BatchNorm's reducer.
pub(crate) struct StatsSum(pub Comm);

impl resnext_model::sync_bn::StatsReducer for StatsSum {
    fn sum(&self, values: &mut [f64]) -> Result<(), tch::TchError> {
        self.0
            .sum_f64(values)
            .map_err(|e| tch::TchError::Torch(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launchers_variables_give_rank_and_size() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(launcher_env_from(env(&[])), None);
        const OMPI: [(&str, &str); 2] =
            [("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")];
        assert_eq!(launcher_env_from(env(&OMPI)), Some((1, 4)));
        const SLURM: [(&str, &str); 2] = [("SLURM_PROCID", "3"), ("SLURM_NTASKS", "8")];
        assert_eq!(launcher_env_from(env(&SLURM)), Some((3, 8)));
        assert_eq!(launcher_env_from(env(&[("PMIX_RANK", "2")])), Some((2, 0)));
        assert_eq!(
            launcher_env_from(env(&[("OMPI_COMM_WORLD_RANK", "x")])),
            None
        );
        let s = Single;
        assert_eq!((s.rank(), s.size()), (0, 1));
        assert_eq!(s.gather_f64(&[1.0, 2.0]).unwrap(), vec![vec![1.0, 2.0]]);
    }
}
