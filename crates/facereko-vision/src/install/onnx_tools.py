"""Run by `facereko models install --engine onnx` inside a throw-away virtual environment.

convert TFLITE ONNX   converts MobileFaceNet with the pinned tflite2onnx, then sorts the graph's
                      initializers and value infos by name: the converter emits them in set order,
                      which changes from run to run, and a fixed order makes the file's SHA-256 fixed.
extract WHEEL MEMBER OUT
                      copies one file out of a wheel (a zip archive).
"""
import shutil
import sys
import zipfile


def convert(src, dst):
    import logging

    logging.disable(logging.WARNING)
    import onnx
    import tflite2onnx

    tflite2onnx.convert(src, dst)
    model = onnx.load(dst)
    for field in ("initializer", "value_info"):
        items = sorted(getattr(model.graph, field), key=lambda t: t.name)
        del getattr(model.graph, field)[:]
        getattr(model.graph, field).extend(items)
    onnx.save(model, dst)


def extract(wheel, member, out):
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"convert": convert, "extract": extract}[command](*args)
