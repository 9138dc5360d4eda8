//! The few protobuf messages of a TensorBoard event file, written by hand with prost's derive
//! (field numbers and types from TensorFlow's `event.proto`, `summary.proto`, `tensor.proto`,
//! `tensor_shape.proto`, `types.proto`, TensorBoard's `plugins/hparams/{api,plugin_data}.proto`,
//! `plugins/text/plugin_data.proto` and protobuf's `struct.proto`). Only what the writer sets:
//! a field it would leave at its default (an empty string, a zero version) is never encoded in
//! proto3, so it is left out here, and the text plugin's `TextPluginData` (a version 0 only) is
//! the empty message.

#![allow(missing_docs)]

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
}

pub mod event {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum What {
        #[prost(string, tag = "3")]
        FileVersion(String),
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

pub mod summary {
    /// `tensorflow.Summary.Image`: an encoded PNG.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grey, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// `tensorflow.Summary.Value`.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Value {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<super::SummaryMetadata>,
        #[prost(oneof = "value::Value", tags = "2, 4, 8")]
        pub value: Option<value::Value>,
    }

    pub mod value {
        #[derive(Clone, PartialEq, ::prost::Oneof)]
        pub enum Value {
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            #[prost(message, tag = "4")]
            Image(super::Image),
            #[prost(message, tag = "8")]
            Tensor(super::super::TensorProto),
        }
    }
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorflow.TensorProto`, as a string tensor (the text plugin's).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TensorProto {
    /// `tensorflow.DataType`: 7 is `DT_STRING`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `tensorflow.DataType::DT_STRING`.
pub const DT_STRING: i32 = 7;

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct HParamsPluginData {
    #[prost(oneof = "hparams_plugin_data::Data", tags = "2, 3, 4")]
    pub data: Option<hparams_plugin_data::Data>,
}

pub mod hparams_plugin_data {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "2")]
        Experiment(super::Experiment),
        #[prost(message, tag = "3")]
        SessionStartInfo(super::SessionStartInfo),
        #[prost(message, tag = "4")]
        SessionEndInfo(super::SessionEndInfo),
    }
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Experiment {
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
}

/// `tensorboard.hparams.HParamInfo`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct HParamInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `tensorboard.hparams.DataType`: 1 string, 2 bool, 3 float64.
    #[prost(int32, tag = "4")]
    pub r#type: i32,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
}

/// `tensorboard.hparams.MetricName`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MetricName {
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: std::collections::BTreeMap<String, ProtoValue>,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionEndInfo {
    /// `tensorboard.hparams.Status`: 1 success, 2 failure, 3 running.
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value` (numbers, strings and booleans only).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ProtoValue {
    #[prost(oneof = "proto_value::Kind", tags = "2, 3, 4")]
    pub kind: Option<proto_value::Kind>,
}

pub mod proto_value {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Kind {
        #[prost(double, tag = "2")]
        NumberValue(f64),
        #[prost(string, tag = "3")]
        StringValue(String),
        #[prost(bool, tag = "4")]
        BoolValue(bool),
    }
}
