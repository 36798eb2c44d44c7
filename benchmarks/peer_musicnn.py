"""musicnn's own TensorFlow code tagging one song, for a side-by-side comparison (benchmarks/bench_speed.py).

Runs in a throwaway interpreter that has TensorFlow and the musicnn package; TensorFlow is never
a dependency of this repository.  One way to make that interpreter (Python 3.11)::

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 numpy==1.26.4 librosa soundfile
    /tmp/tfenv/bin/pip install --no-deps musicnn

Two timings, printed as one JSON line:

- ``extractor``: ``musicnn.extractor.extractor(song, 'MTT_musicnn')`` as a user calls it, warm
  (the median of later calls in the same process; every call rebuilds the graph and restores the
  checkpoint, which is how the package works);
- ``inference``: the same computation with the graph built and the weights restored once: the
  package's log-mel of the decoded song (librosa, float16 storage, log10(1 + 10000 mel)), its 3 s
  patches, and the session runs, one patch per run as the package feeds them (``BATCH_SIZE = 1``)
  and all patches in one run (``batched``).

    /tmp/tfenv/bin/python benchmarks/peer_musicnn.py song.wav --repeats 5 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from timing import median_seconds  # benchmarks/timing.py, beside this script

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1 layers need Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import contextlib
    import io

    import librosa
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from musicnn import configuration as config
    from musicnn import extractor as package
    from musicnn import models

    quiet = contextlib.redirect_stdout(io.StringIO())  # the package prints progress on every call

    def extractor() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            package.extractor(args.audio, model="MTT_musicnn", input_length=3, extract_features=False)

    # the graph and the weights once, as extractor() builds them on each call
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        training = tf.compat.v1.placeholder(tf.bool)
        y = models.define_model(x, training, "MTT_musicnn", len(config.MTT_LABELS))[0]
        probabilities = tf.nn.sigmoid(y)
    session = tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1))
    session.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(session, os.path.join(os.path.dirname(package.__file__), "MTT_musicnn") + "/")
    audio, _ = librosa.load(args.audio, sr=config.SR)  # decoding is not timed, as on the other side

    def patches():
        mel = librosa.feature.melspectrogram(y=audio, sr=config.SR, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE,
                                             n_mels=config.N_MELS).T.astype(np.float16)
        mel = np.log10(10000 * mel + 1)
        starts = range(0, mel.shape[0] - n_frames + 1, n_frames)
        return np.stack([mel[s:s + n_frames] for s in starts])

    def one_per_run() -> None:
        batch = patches()
        for index in range(len(batch)):
            session.run(probabilities, feed_dict={x: batch[index:index + 1], training: False})

    def batched() -> None:
        session.run(probabilities, feed_dict={x: patches(), training: False})

    with quiet:
        timings = {"extractor": median_seconds(extractor, args.repeats),
                   "inference": median_seconds(one_per_run, args.repeats),
                   "batched": median_seconds(batched, args.repeats)}
    print(json.dumps({"workload": "musicnn-tf", "tensorflow": tf.__version__, "threads": args.threads, **timings}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
