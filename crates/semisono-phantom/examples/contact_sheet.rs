//! Renders a contact sheet of phantom images (breast and thyroid, all probes, all classes) with the
//! exact mask outlined, to `docs/phantom_contact_sheet.png`.
//!
//! `cargo run -p semisono-phantom --example contact_sheet [--release] -- [out.png] [cell_px] [seed]`

use semisono_phantom::{generate, PhantomConfig, Preset, ProbeChoice};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "docs/phantom_contact_sheet.png".into());
    let cell: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(7);
    let rows = [
        (Preset::Breast, ProbeChoice::Linear),
        (Preset::Breast, ProbeChoice::Curvilinear),
        (Preset::Thyroid, ProbeChoice::Linear),
        (Preset::Thyroid, ProbeChoice::Sector),
    ];
    // Columns: class labels 0 (normal), 1, 1, 2, 2, 2 -> normal, 2 benign, 3 malignant.
    let cols: [u8; 6] = [0, 1, 1, 2, 2, 2];
    let (w, h) = (cell * cols.len() as u32, cell * rows.len() as u32);
    let mut sheet = image::RgbImage::new(w, h);
    for (r, &(preset, probe)) in rows.iter().enumerate() {
        let cfg = PhantomConfig {
            preset,
            probe,
            width: cell,
            height: cell,
            seed,
            ..Default::default()
        };
        let mut index = 0u64;
        for (c, &want) in cols.iter().enumerate() {
            let s = loop {
                let s = generate(&cfg, index);
                index += 1;
                if s.clean_label == want {
                    break s;
                }
            };
            let (cw, ch) = (s.width as usize, s.height as usize);
            for y in 0..ch {
                for x in 0..cw {
                    let k = y * cw + x;
                    let v = s.image[k];
                    let edge = s.mask[k] > 0
                        && (x == 0
                            || y == 0
                            || x + 1 == cw
                            || y + 1 == ch
                            || s.mask[k - 1] == 0
                            || s.mask[k + 1] == 0
                            || s.mask[k - cw] == 0
                            || s.mask[k + cw] == 0);
                    let px = if edge { [255, 200, 0] } else { [v, v, v] };
                    sheet.put_pixel(
                        c as u32 * cell + x as u32,
                        r as u32 * cell + y as u32,
                        image::Rgb(px),
                    );
                }
            }
            eprintln!(
                "row {r} col {c}: index {} class {} probe {} score {}",
                index - 1,
                s.meta["class"],
                s.meta["probe"],
                s.meta["score"]
            );
        }
    }
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).ok();
    }
    // Best compression with adaptive filters keeps the sheet small (speckle compresses poorly).
    let file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create contact sheet"));
    let enc = image::codecs::png::PngEncoder::new_with_quality(
        file,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    image::ImageEncoder::write_image(enc, sheet.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("write contact sheet");
    eprintln!("wrote {out} ({w}x{h})");
}
