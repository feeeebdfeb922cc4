//! Renders images with their masks side by side, for inspection.
//!
//! `cargo run -p semisono-phantom --example render_one -- '<config json>' <first index> <count> <out.png>`

use semisono_phantom::{generate, PhantomConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg: PhantomConfig =
        serde_json::from_str(args.get(1).map(String::as_str).unwrap_or("{}")).expect("config json");
    cfg.validate().expect("valid config");
    let start: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let out = args.get(4).cloned().unwrap_or_else(|| "phantom.png".into());
    let (w, h) = (cfg.width, cfg.height);
    let mut sheet = image::GrayImage::new(2 * w, h * count);
    for k in 0..count {
        let s = generate(&cfg, start + k as u64);
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                sheet.put_pixel(x, k * h + y, image::Luma([s.image[i]]));
                sheet.put_pixel(w + x, k * h + y, image::Luma([s.mask[i]]));
            }
        }
        println!("{}", serde_json::to_string(&s.meta).unwrap());
    }
    sheet.save(&out).expect("write png");
}
