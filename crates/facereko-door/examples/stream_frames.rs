//! Writes the benches' synthetic camera frames, for `facereko sim stream`:
//!
//! `cargo run -p facereko-door --example stream_frames -- PHOTO OUT_DIR [--empty]`
//!
//! Ten 640×480 JPEG frames of PHOTO's face drifting on a plain background (or, with `--empty`, the
//! background alone). `scripts/measure-watch-cpu.sh` uses them.

#[path = "../benches/support/frames.rs"]
mod frames;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(photo), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: stream_frames PHOTO OUT_DIR [--empty]");
        std::process::exit(2);
    };
    let with_face = !args.iter().any(|a| a == "--empty");
    let n = frames::write_frames(photo.as_ref(), out.as_ref(), with_face).len();
    println!("{n} frames in {out}");
}
