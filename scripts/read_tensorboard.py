"""Reads a TensorBoard log folder back with the `tensorboard` package's EventAccumulator and
prints what it found as JSON: every scalar (step, value), every image (step, size, whether it
decodes as a PNG of that size), the text tags, and the hparams plugin's session (hyper-parameters,
metric tags, end status). The test `crates/resnext-cli/tests/tensorboard.rs` compares it with
metrics.csv; run it in the setup venv (`cargo xtask setup` installs tensorboard).

    python scripts/read_tensorboard.py RUN/tb
"""

import io
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2


def main(folder):
    acc = ea.EventAccumulator(
        folder,
        size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0},
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "images": {}, "text": {}, "hparams": None}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    try:
        from PIL import Image
    except ImportError:
        Image = None
    for tag in tags["images"]:
        rows = []
        for e in acc.Images(tag):
            png = e.encoded_image_string
            decodes = png[:8] == b"\x89PNG\r\n\x1a\n"
            if Image is not None:
                try:
                    img = Image.open(io.BytesIO(png))
                    img.load()
                    decodes = decodes and img.size == (e.width, e.height)
                except Exception:
                    decodes = False
            rows.append({"step": e.step, "width": e.width, "height": e.height, "decodes": decodes})
        out["images"][tag] = rows
    for tag in acc.PluginTagToContent("text"):
        out["text"][tag] = [
            b"".join(e.tensor_proto.string_val).decode("utf-8") for e in acc.Tensors(tag)
        ]
    content = acc.PluginTagToContent("hparams")
    if content:
        h = {"hparams": {}, "metrics": [], "status": None}
        for tag, raw in content.items():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            kind = data.WhichOneof("data")
            if kind == "session_start_info":
                for name, v in data.session_start_info.hparams.items():
                    h["hparams"][name] = getattr(v, v.WhichOneof("kind"))
            elif kind == "experiment":
                h["metrics"] = [m.name.tag for m in data.experiment.metric_infos]
            elif kind == "session_end_info":
                h["status"] = data.session_end_info.status
        out["hparams"] = h
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
