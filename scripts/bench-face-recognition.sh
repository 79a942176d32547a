#!/usr/bin/env bash
# Speed per 640x480 camera frame (JPEG decode + detect + landmarks + embed), in one run, on the same
# frame files:
#   1. Python's `face_recognition` 1.3.0 (dlib; what users of the original's kind of project usually
#      pick), in a throw-away virtual environment with dlib's prebuilt wheel (`dlib-bin`, so nothing
#      compiles), with its defaults (`face_locations` upsamples once) and with upsampling off;
#   2. FaceReko's two local engines, through the criterion bench `frame/*` of facereko-vision.
# Frames: LFW photos from $FACEREKO_FACES_DIR/lfw-dev pasted on a plain 640x480 background, written to
# a temporary folder (nothing is kept). Needs FACEREKO_MODELS_DIR with both engines' models.
set -euo pipefail
cd "$(dirname "$0")/.."

export FACEREKO_MODELS_DIR="${FACEREKO_MODELS_DIR:-$HOME/.cache/facereko-models}"
export FACEREKO_FACES_DIR="${FACEREKO_FACES_DIR:-$(cd .. && pwd)/shared/faces}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
rounds="${ROUNDS:-3}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check --only-binary=:all: \
    dlib-bin==20.0.1.post1 numpy==2.4.6 pillow==12.1.0 Click==8.3.1
"$py" -m pip install -q --disable-pip-version-check --no-deps \
    face_recognition==1.3.0 face-recognition-models==0.3.0

frames="$work/frames"
"$py" - "$FACEREKO_FACES_DIR/lfw-dev" "$frames" <<'PY'
import os, sys
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
ids = sorted(os.listdir(src))[:10]
for i, ident in enumerate(ids):
    face = Image.open(os.path.join(src, ident, sorted(os.listdir(os.path.join(src, ident)))[0]))
    frame = Image.new("RGB", (640, 480), (96, 104, 110))
    frame.paste(face.convert("RGB"), (195, 115))
    frame.save(os.path.join(out, f"frame{i:02}.jpg"), quality=90)
PY

echo "== Python face_recognition 1.3.0 (dlib-bin 20.0.1), $(ls "$frames" | wc -l) frames x $rounds rounds"
"$py" - "$frames" "$rounds" <<'PY'
import os, sys, time
import face_recognition as fr
frames = sorted(os.path.join(sys.argv[1], f) for f in os.listdir(sys.argv[1]))
rounds = int(sys.argv[2])
for upsample in (1, 0):
    # Warm up, then time decode + detect + landmarks + embed per frame.
    fr.face_encodings(fr.load_image_file(frames[0]))
    found, t = 0, time.perf_counter()
    for _ in range(rounds):
        for f in frames:
            img = fr.load_image_file(f)
            boxes = fr.face_locations(img, number_of_times_to_upsample=upsample)
            found += len(fr.face_encodings(img, boxes))
    ms = (time.perf_counter() - t) * 1000 / (rounds * len(frames))
    label = "default (upsample 1)" if upsample else "upsample 0"
    print(f"face_recognition {label}: {ms:.1f} ms/frame ({found} faces in {rounds * len(frames)} frames)")
PY

echo "== FaceReko (criterion, same frames)"
BENCH_FRAMES="$frames" cargo bench -q -p facereko-vision --bench vision -- 'frame/' 2>&1 |
    grep -E "^frame/|time:" || true
