//! The processes of a `resnext train` job: one, or N under `mpirun`/`srun` (feature `mpi`).

use anyhow::Result;
use resnext_train::dist::{self, launcher_env, Comm};

/// This process's place in the job.
pub struct Job {
    comm: Comm,
    #[cfg(feature = "mpi")]
    mpi: Option<dist::mpi::MpiJob>,
}

impl Job {
    /// One process, or MPI when a launcher started this process as one rank of several. A
    /// launch by `mpirun` of a binary built without MPI is refused rather than run as N
    /// independent trainings into one directory.
    pub fn start() -> Result<Self> {
        let launched = launcher_env();
        #[cfg(feature = "mpi")]
        if launched.is_some() {
            let mpi = dist::mpi::MpiJob::init()?;
            return Ok(Self {
                comm: mpi.comm(),
                mpi: Some(mpi),
            });
        }
        #[cfg(not(feature = "mpi"))]
        if let Some((rank, size)) = launched {
            if size != 1 {
                anyhow::bail!(
                    "started as rank {rank} of {} by a launcher (mpirun, srun), but this resnext \
                     was built without MPI: build it with `cargo build --release --features mpi` \
                     (`cargo xtask setup --mpi` installs OpenMPI)",
                    match size {
                        0 => "several".to_string(),
                        n => n.to_string(),
                    }
                );
            }
        }
        Ok(Self {
            comm: dist::single(),
            #[cfg(feature = "mpi")]
            mpi: None,
        })
    }

    pub fn comm(&self) -> Comm {
        self.comm.clone()
    }

    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Ends the whole job after this rank's error (the message names the rank): the other ranks
    /// may be waiting for this one in a collective, and must not wait forever.
    pub fn fail(&self, message: &str) -> ! {
        eprintln!(
            "error: rank {} of {}: {message}",
            self.comm.rank(),
            self.comm.size()
        );
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            mpi.abort(1);
        }
        std::process::exit(1)
    }
}
