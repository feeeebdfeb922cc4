//! Importers driven by a label table: UDIAT Dataset B (xlsx or csv) and BUS-BRA (bus_data.csv).

mod import_support;

use std::io::Write;
use std::path::{Path, PathBuf};

use import_support::*;
use semisono_data::import::{detect_format, import, ImportFormat, ImportOptions};
use semisono_data::{Dataset, GrayImage};

/// Writes a one-sheet .xlsx with inline strings; numeric-looking cells are stored as numbers.
fn write_xlsx(path: &Path, rows: &[&[&str]]) {
    let ns = "http://schemas.openxmlformats.org";
    let mut sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}/spreadsheetml/2006/main"><sheetData>"#
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, v) in row.iter().enumerate() {
            let cell = format!("{}{}", (b'A' + c as u8) as char, r + 1);
            if v.parse::<f64>().is_ok() {
                sheet.push_str(&format!(r#"<c r="{cell}"><v>{v}</v></c>"#));
            } else {
                sheet.push_str(&format!(
                    r#"<c r="{cell}" t="inlineStr"><is><t>{v}</t></is></c>"#
                ));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let rel = |id: &str, ty: &str, target: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="{id}" Type="{ns}/officeDocument/2006/relationships/{ty}" Target="{target}"/></Relationships>"#
        )
    };
    let files = [
        (
            "[Content_Types].xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{ns}/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#
            ),
        ),
        (
            "_rels/.rels",
            rel("rId1", "officeDocument", "xl/workbook.xml"),
        ),
        (
            "xl/workbook.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{ns}/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            rel("rId1", "worksheet", "worksheets/sheet1.xml"),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in files {
        zip.start_file(name, opts).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// UDIAT Dataset B with 3 images; GT of 000002 has JPEG-like noise values.
fn udiat_tree(root: &Path) -> PathBuf {
    let d = root.join("DatasetB");
    for i in 1..=3u32 {
        let name = format!("{i:06}.png");
        write_png(&d.join("original").join(&name), &gray(30, 20, i));
        let mut m = rect_mask(30, 20, 5, 5, 15, 12);
        if i == 2 {
            m.data[0] = 9;
            m.data[5 * 30 + 5] = 240;
        }
        write_png(&d.join("GT").join(&name), &m);
    }
    write_xlsx(
        &d.join("DatasetB.xlsx"),
        &[
            &["Image", "Type", "Diagnosis"],
            &["1", "Benign", "CYST"],
            &["2", "Malignant", "IDC"],
            &["3", "benign", "FA"],
        ],
    );
    d
}

#[test]
fn udiat_from_xlsx() {
    let tmp = tempfile::tempdir().unwrap();
    let input = udiat_tree(tmp.path());
    assert_eq!(detect_format(&input), Some(ImportFormat::Udiat));
    let out = tmp.path().join("ds");
    let s = import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out).unwrap();
    assert_eq!(s.classes, ["benign", "malignant"]);
    assert_eq!(
        s.per_class,
        [("benign".to_string(), 2), ("malignant".to_string(), 1)]
    );
    assert_eq!(s.thresholded_masks.len(), 1);
    assert!(s.thresholded_masks[0].file.ends_with("GT/000002.png"));
    let ds = Dataset::open(&out).unwrap();
    let e = ds.get("000002").unwrap();
    assert_eq!(e.label, Some(1));
    assert_eq!(e.meta["diagnosis"], "IDC");
    assert_eq!(ds.load_mask(e).unwrap().unwrap().count_nonzero(), 70);
}

#[test]
fn udiat_from_csv_and_table_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = udiat_tree(tmp.path());
    std::fs::remove_file(input.join("DatasetB.xlsx")).unwrap();
    let out = tmp.path().join("ds");
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["no DatasetB.xlsx or DatasetB.csv"],
        &out,
    );
    let csv = input.join("DatasetB.csv");
    write(
        &csv,
        b"Image,Type\n000001,Benign\n2,Malignant\n3.png,Benign\n",
    );
    let s = import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out).unwrap();
    assert_eq!(s.images, 3);
    std::fs::remove_dir_all(&out).unwrap();

    write(&csv, b"Image,Type\n1,Benign\n2,Unsure\n3,Benign\n");
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["DatasetB.csv:3:", "\"Unsure\""],
        &out,
    );
    write(&csv, b"Image,Type\n1,Benign\n2,Malignant\n");
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["000003.png", "has no row in", "DatasetB.csv"],
        &out,
    );
    write(
        &csv,
        b"Image,Type\n1,Benign\n2,Malignant\n3,Benign\n4,Benign\n",
    );
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["DatasetB.csv:5:", "000004"],
        &out,
    );
    write(&csv, b"Image,Type\n1,Benign\n2,Malignant,extra\n3,Benign\n");
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["DatasetB.csv:3:"],
        &out,
    );
    write(&csv, b"Image,Type\n1,Benign\n2,Malignant\n3,Benign\n");
    std::fs::remove_file(input.join("GT/000003.png")).unwrap();
    assert_failed(
        import(ImportFormat::Udiat, &input, &ImportOptions::default(), &out),
        &["000003.png", "no mask"],
        &out,
    );
}

/// BUS-BRA with two patients, three images.
fn busbra_tree(root: &Path) -> PathBuf {
    let d = root.join("BUSBRA");
    for (i, id) in ["bus_0001-l", "bus_0001-r", "bus_0002-s"]
        .iter()
        .enumerate()
    {
        write_png(&d.join(format!("Images/{id}.png")), &gray(16, 12, i as u32));
        let mask_id = id.replacen("bus", "mask", 1);
        write_png(
            &d.join(format!("Masks/{mask_id}.png")),
            &rect_mask(16, 12, 1, 1, 5, 5),
        );
    }
    write(
        &d.join("bus_data.csv"),
        b"ID,Histology,Pathology,BIRADS,Device\n\
          bus_0001-l,fibroadenoma,benign,3,GE\n\
          bus_0001-r,cyst,Benign ,2,GE\n\
          bus_0002-s,idc,malignant,5,Toshiba\n",
    );
    d
}

#[test]
fn busbra_groups_and_birads() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busbra_tree(tmp.path());
    assert_eq!(detect_format(&input), Some(ImportFormat::BusBra));
    let out = tmp.path().join("ds");
    let s = import(
        ImportFormat::BusBra,
        &input,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!((s.images, s.with_mask, s.with_label), (3, 3, 3));
    let ds = Dataset::open(&out).unwrap();
    let e = ds.get("bus_0001-r").unwrap();
    assert_eq!(e.group.as_deref(), Some("0001"));
    assert_eq!(e.label, Some(0));
    assert_eq!(e.meta["birads"], 2);
    assert_eq!(e.meta["Histology"], "cyst");
    assert_eq!(ds.get("bus_0002-s").unwrap().label, Some(1));
    assert_eq!(ds.get("bus_0002-s").unwrap().group.as_deref(), Some("0002"));
}

#[test]
fn busbra_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busbra_tree(tmp.path());
    let out = tmp.path().join("ds");
    std::fs::remove_file(input.join("Masks/mask_0001-r.png")).unwrap();
    assert_failed(
        import(
            ImportFormat::BusBra,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["bus_data.csv:3:", "mask_0001-r.png not found"],
        &out,
    );
    write_png(
        &input.join("Masks/mask_0001-r.png"),
        &GrayImage::zeros(16, 12),
    );
    write_png(&input.join("Images/bus_0003-l.png"), &gray(16, 12, 9));
    assert_failed(
        import(
            ImportFormat::BusBra,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["bus_0003-l.png", "has no row"],
        &out,
    );
    std::fs::remove_file(input.join("Images/bus_0003-l.png")).unwrap();
    write(
        &input.join("bus_data.csv"),
        b"ID,Pathology\nbus_0001-l,benign\nbus_0001-r,maybe\nbus_0002-s,benign\n",
    );
    assert_failed(
        import(
            ImportFormat::BusBra,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["bus_data.csv:3:", "\"maybe\""],
        &out,
    );
    write(
        &input.join("bus_data.csv"),
        b"Name,Pathology\nbus_0001-l,benign\n",
    );
    assert_failed(
        import(
            ImportFormat::BusBra,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["bus_data.csv:1:", "no ID column"],
        &out,
    );
}
