//! A remote input that fails is transient (retry the task later) only when the network
//! was at fault, as GDAL reported it while reading: real GDAL reads over HTTP from a local
//! server that fails on purpose.

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::DriverManager;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stratus_raster::warp::read_input_with_retries;
use stratus_raster::RasterError;

/// How the server answers range requests after the first `good` ones.
#[derive(Clone, Copy)]
enum Then {
    Status(u16),
    Garbage,
}

/// Serve `bytes` at every path; HEAD always answers; GETs after the first `good` fail as `then`.
fn serve(bytes: Vec<u8>, good: usize, then: Then) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (bytes, gets) = (Arc::new(bytes), Arc::new(AtomicUsize::new(0)));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (bytes, gets) = (bytes.clone(), gets.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        head.push(line.trim_end().to_string());
                    }
                    let range = head
                        .iter()
                        .find_map(|h| h.to_ascii_lowercase().strip_prefix("range: bytes=").map(str::to_string));
                    let len = bytes.len();
                    let reply = if head[0].starts_with("HEAD") {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n\r\n").into_bytes()
                    } else {
                        let (a, b) = range
                            .and_then(|r| {
                                r.split_once('-').map(|(a, b)| (a.parse::<usize>().ok(), b.parse::<usize>().ok()))
                            })
                            .map(|(a, b)| (a.unwrap_or(0), b.unwrap_or(len - 1).min(len - 1)))
                            .unwrap_or((0, len - 1));
                        let n = gets.fetch_add(1, Ordering::SeqCst);
                        match (n < good, then) {
                            (false, Then::Status(code)) => {
                                format!("HTTP/1.1 {code} Failing\r\nContent-Length: 0\r\n\r\n").into_bytes()
                            }
                            (ok, _) => {
                                let body: Vec<u8> = if ok { bytes[a..=b].to_vec() } else { vec![0x5a; b + 1 - a] };
                                let mut r = format!(
                                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{len}\r\nContent-Length: {}\r\n\r\n",
                                    body.len()
                                )
                                .into_bytes();
                                r.extend(body);
                                r
                            }
                        }
                    };
                    if out.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

/// A tiled, uncompressed 512 x 512 GeoTIFF: its blocks lie well past GDAL's first read.
fn cog_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.tif");
    let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
    let opts = RasterCreationOptions::from_iter(["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]);
    let mut ds = drv.create_with_band_type_with_options::<u16, _>(&path, 512, 512, 1, &opts).unwrap();
    ds.set_geo_transform(&[500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0]).unwrap();
    ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(32735).unwrap()).unwrap();
    let data: Vec<u16> = (0..512 * 512).map(|i| (i % 9973) as u16).collect();
    ds.rasterband(1).unwrap().write((0, 0), (512, 512), &mut Buffer::new((512, 512), data)).unwrap();
    drop(ds);
    let mut bytes = Vec::new();
    std::fs::File::open(&path).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

fn read_remote(base: &str, name: &str) -> Result<Vec<u16>, RasterError> {
    stratus_raster::init_gdal();
    // GDAL's own retries, quickly (the production delay is 1 s).
    gdal::config::set_config_option("GDAL_HTTP_RETRY_DELAY", "0.05").unwrap();
    let path = format!("/vsicurl/{base}/{name}.tif");
    read_input_with_retries(&path, &path, |ds| {
        let band = ds.rasterband(1)?;
        Ok(band.read_as::<u16>((0, 0), (512, 512), (512, 512), None)?.into_shape_and_vec().1)
    })
}

#[test]
fn a_server_that_answers_503_makes_the_input_unavailable() {
    let base = serve(cog_bytes(), 1, Then::Status(503));
    let err = read_remote(&base, "s503").expect_err("every block read fails");
    assert!(matches!(err, RasterError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn a_server_that_answers_429_makes_the_input_unavailable() {
    let base = serve(cog_bytes(), 1, Then::Status(429));
    let err = read_remote(&base, "s429").expect_err("every block read fails");
    assert!(err.is_transient(), "{err:?}");
}

#[test]
fn an_input_that_is_not_there_is_not_transient() {
    let base = serve(cog_bytes(), 0, Then::Status(404));
    let err = read_remote(&base, "s404").expect_err("not found");
    assert!(!err.is_transient(), "{err:?}");
    assert!(matches!(err, RasterError::Input { .. }), "{err:?}");
}

#[test]
fn blocks_that_go_missing_after_the_header_are_not_transient() {
    let base = serve(cog_bytes(), 1, Then::Status(404));
    let err = read_remote(&base, "gone").expect_err("blocks are gone");
    assert!(!err.is_transient(), "{err:?}");
}

#[test]
fn bad_bytes_are_not_transient() {
    let base = serve(cog_bytes(), 0, Then::Garbage);
    let err = read_remote(&base, "garbage").expect_err("not a TIFF");
    assert!(!err.is_transient(), "{err:?}");
}

#[test]
fn a_server_that_cannot_be_reached_makes_the_input_unavailable() {
    // A port that was just free: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = read_remote(&format!("http://127.0.0.1:{port}"), "refused").expect_err("nothing listens");
    assert!(matches!(err, RasterError::Unavailable { .. }), "{err:?}");
}

#[test]
fn a_local_file_that_cannot_be_read_is_not_transient() {
    let err = stratus_raster::warp::read_input_with_retries("/nonexistent/in.tif", "/nonexistent/in.tif", |_| Ok(()))
        .expect_err("no such file");
    assert!(!err.is_transient(), "{err:?}");
}
