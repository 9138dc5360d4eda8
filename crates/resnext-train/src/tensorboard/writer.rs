//! [`EventWriter`]: one TensorBoard event file, appended to (see the module [`super`]).

use super::proto;
use super::record;
use crate::error::TrainError;
use prost::Message;
use proto::summary::value::Value as SummaryValue;
use proto::{event::What, Event, PluginData, Summary, SummaryMetadata};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A hyper-parameter's value as the hparams plugin shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// How a training session ended, for the hparams plugin (its `Status` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Success = 1,
    Failure = 2,
    Running = 3,
}

/// Whether `dir` can hold a run's event files: true when it is a directory, false when it is
/// absent (to be created); a link or anything else is an error that leaves it as it is. Training
/// checks this before it writes any of a new run's files.
pub fn check_target(dir: &Path) -> Result<bool, TrainError> {
    let refuse = |reason: String| TrainError::TensorBoard {
        path: dir.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse(
            "is a symbolic link, which is not followed; remove it".into(),
        )),
        Ok(m) if !m.is_dir() => Err(refuse(
            "exists and is not a directory; it was left as it is".into(),
        )),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// Appends events to a new event file in a directory.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("path", &self.path)
            .finish()
    }
}

/// Seconds since the Unix epoch.
fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's name, as TensorBoard's file names carry it.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

impl EventWriter {
    /// A new event file in `dir` (created when absent; refused when it is not a directory or is
    /// a symbolic link), holding the file-version event.
    pub fn create(dir: &Path) -> Result<Self, TrainError> {
        let refuse = |reason: String| TrainError::TensorBoard {
            path: dir.to_path_buf(),
            reason,
        };
        if !check_target(dir)? {
            std::fs::create_dir(dir).map_err(|e| refuse(format!("cannot be created: {e}")))?
        }
        let secs = now_secs() as u64;
        let base = format!(
            "events.out.tfevents.{secs}.{}.{}",
            host_name(),
            std::process::id()
        );
        // a second writer in the same second and process gets a suffix, as TensorFlow's do
        let mut n = 0;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            // created exclusively: an existing file or link there is never opened
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(refuse(format!("cannot create {}: {e}", path.display()))),
            }
        };
        let mut w = EventWriter {
            path,
            file: BufWriter::new(file),
        };
        w.event(0, What::FileVersion("brain.Event:2".into()))?;
        w.flush()?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, e: std::io::Error) -> TrainError {
        TrainError::TensorBoard {
            path: self.path.clone(),
            reason: format!("cannot be written: {e}"),
        }
    }

    fn event(&mut self, step: i64, what: What) -> Result<(), TrainError> {
        let event = Event {
            wall_time: now_secs(),
            step,
            what: Some(what),
        };
        let bytes = record::frame(&event.encode_to_vec());
        self.file.write_all(&bytes).map_err(|e| self.io_error(e))
    }

    /// One summary value `tag` (with its plugin's `metadata`).
    fn summary(
        &mut self,
        step: i64,
        tag: &str,
        metadata: Option<SummaryMetadata>,
        value: Option<SummaryValue>,
    ) -> Result<(), TrainError> {
        let tag = tag.into();
        let value = vec![proto::summary::Value {
            tag,
            metadata,
            value,
        }];
        self.event(step, What::Summary(Summary { value }))
    }

    /// A plugin's metadata: its name and its encoded plugin data.
    fn plugin(name: &str, content: Vec<u8>) -> Option<SummaryMetadata> {
        Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: name.into(),
                content,
            }),
        })
    }

    /// A scalar (stored as f32, as TensorBoard's `simple_value` is).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<(), TrainError> {
        let value = SummaryValue::SimpleValue(value as f32);
        self.summary(step, tag, None, Some(value))
    }

    /// An RGB image, given as its PNG encoding and size.
    pub fn image_png(
        &mut self,
        tag: &str,
        step: i64,
        png: Vec<u8>,
        (width, height): (u32, u32),
    ) -> Result<(), TrainError> {
        let image = proto::summary::Image {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png,
        };
        self.summary(step, tag, None, Some(SummaryValue::Image(image)))
    }

    /// Text (Markdown) for the text plugin.
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<(), TrainError> {
        // `TextPluginData` of version 0: the empty message
        let metadata = Self::plugin("text", Vec::new());
        let tensor = proto::TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto {
                dim: vec![proto::Dim { size: 1 }],
            }),
            string_val: vec![text.as_bytes().to_vec()],
        };
        self.summary(step, tag, metadata, Some(SummaryValue::Tensor(tensor)))
    }

    fn hparams_value(
        &mut self,
        tag: &str,
        data: proto::hparams_plugin_data::Data,
    ) -> Result<(), TrainError> {
        let content = proto::HParamsPluginData { data: Some(data) }.encode_to_vec();
        self.summary(0, tag, Self::plugin("hparams", content), None)
    }

    /// The hyper-parameters of this session and the scalar tags that measure it (the hparams
    /// plugin's experiment and session start).
    pub fn hparams(
        &mut self,
        hparams: &[(String, HParam)],
        metric_tags: &[&str],
    ) -> Result<(), TrainError> {
        use proto::hparams_plugin_data::Data;
        use proto::proto_value::Kind;
        let start = now_secs();
        let experiment = proto::Experiment {
            time_created_secs: start,
            hparam_infos: hparams
                .iter()
                .map(|(name, v)| proto::HParamInfo {
                    name: name.clone(),
                    r#type: match v {
                        HParam::Text(_) => 1,
                        HParam::Bool(_) => 2,
                        HParam::Number(_) => 3,
                    },
                })
                .collect(),
            metric_infos: metric_tags
                .iter()
                .map(|tag| proto::MetricInfo {
                    name: Some(proto::MetricName { tag: (*tag).into() }),
                })
                .collect(),
        };
        self.hparams_value("_hparams_/experiment", Data::Experiment(experiment))?;
        let session = proto::SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(name, v)| {
                    let kind = match v {
                        HParam::Number(x) => Kind::NumberValue(*x),
                        HParam::Text(s) => Kind::StringValue(s.clone()),
                        HParam::Bool(b) => Kind::BoolValue(*b),
                    };
                    (name.clone(), proto::ProtoValue { kind: Some(kind) })
                })
                .collect(),
            start_time_secs: start,
        };
        self.hparams_value(
            "_hparams_/session_start_info",
            Data::SessionStartInfo(session),
        )
    }

    /// The end of the session (the hparams plugin's status).
    pub fn session_end(&mut self, status: SessionStatus) -> Result<(), TrainError> {
        self.hparams_value(
            "_hparams_/session_end_info",
            proto::hparams_plugin_data::Data::SessionEndInfo(proto::SessionEndInfo {
                status: status as i32,
                end_time_secs: now_secs(),
            }),
        )
    }

    /// Hands what was written to the file system, so a running TensorBoard sees it.
    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.file.flush().map_err(|e| self.io_error(e))?;
        let synced = self.file.get_ref().sync_data();
        synced.map_err(|e| self.io_error(e))
    }
}

/// Every value of a TOML table that is not a table, under its dotted `section.key` name, in
/// order (for the hyper-parameters here, and for `cv.toml`'s comparison).
pub(crate) fn toml_leaves(table: &toml::Table) -> Vec<(String, &toml::Value)> {
    fn walk<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
        for (k, v) in table {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&name, t, out),
                other => out.push((name, other)),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

/// A TOML table flattened into `section.key` hyper-parameters (arrays and other values as their
/// TOML text).
pub fn flatten_toml(table: &toml::Table) -> Vec<(String, HParam)> {
    let hparam = |v: &toml::Value| match v {
        toml::Value::Integer(i) => HParam::Number(*i as f64),
        toml::Value::Float(f) => HParam::Number(*f),
        toml::Value::Boolean(b) => HParam::Bool(*b),
        toml::Value::String(s) => HParam::Text(s.clone()),
        other => HParam::Text(other.to_string()),
    };
    toml_leaves(table)
        .into_iter()
        .map(|(name, v)| (name, hparam(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_or_a_file_named_tb_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tb");
        resnext_io::write_atomic(&file, b"x").unwrap();
        let e = EventWriter::create(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        #[cfg(unix)]
        {
            let target = dir.path().join("elsewhere");
            std::fs::create_dir(&target).unwrap();
            let link = dir.path().join("tb-link");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let e = EventWriter::create(&link).unwrap_err().to_string();
            assert!(e.contains("symbolic link"), "{e}");
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        }
    }

    #[test]
    fn events_are_framed_and_decode_back() {
        let dir = tempfile::tempdir().unwrap();
        let tb = dir.path().join("tb");
        let mut w = EventWriter::create(&tb).unwrap();
        w.scalar("a/b", 3, 0.25).unwrap();
        w.flush().unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let bytes = std::fs::read(w.path()).unwrap();
        let mut at = 0;
        let mut events = Vec::new();
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, record::masked_crc32c(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, record::masked_crc32c(data));
            events.push(Event::decode(data).unwrap());
            at += 16 + len;
        }
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].what,
            Some(What::FileVersion("brain.Event:2".into()))
        );
        assert_eq!(events[1].step, 3);
        let Some(What::Summary(s)) = &events[1].what else {
            panic!("not a summary")
        };
        assert_eq!(s.value[0].tag, "a/b");
        assert_eq!(s.value[0].value, Some(SummaryValue::SimpleValue(0.25)));
    }
}
