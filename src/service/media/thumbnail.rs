//! Thumbnails: the spec's standard sizes, made once per blob and size with the `image` crate and
//! cached beside the original.
//!
//! Decoding is bounded before it starts: the header's dimensions must fit
//! `media.max_image_pixels`, and the decoder gets `image::Limits` on dimensions and memory, so
//! a decompression bomb (a tiny file declaring a huge image) is refused, not allocated. At most
//! [`PARALLEL_THUMBNAILS`] images are decoded at once, which bounds the memory of a burst.
//!
//! Requested sizes snap to the spec's standard list (as Synapse does by default): a client
//! asking for the sizes clients ask for (32×32 and 96×96 crops for avatars, 320×240 to 800×600
//! scaled for timeline images) gets exactly them, any other size gets the closest one at least
//! as large, and the cache stays a handful of files per image however sizes are asked.

use std::{io::Cursor, path::PathBuf, sync::Arc};

use http::StatusCode;
use image::{
    AnimationDecoder, DynamicImage, Frame, ImageDecoder, ImageFormat, ImageReader, Limits,
    codecs::{gif::GifDecoder, png::PngDecoder, webp::WebPDecoder},
};

use super::{MediaRecord, MediaService, ThumbnailRecord, media_error};
use crate::{
    error::{Error, Result},
    service::keyed_locks::KeyedLocks,
    storage::codec,
};

/// Images decoded at the same time.
const PARALLEL_THUMBNAILS: usize = 2;
/// Most frames an animated thumbnail keeps.
const MAX_FRAMES: usize = 300;
/// Longest side of an image the decoder accepts, whatever the pixel budget.
const MAX_SIDE: u32 = 20_000;

/// How a thumbnail fits its box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exactly the box, the image centred and its overflow cut.
    Crop,
    /// Within the box, the aspect ratio kept.
    Scale,
}

/// One thumbnail size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThumbnailSpec {
    pub width: u32,
    pub height: u32,
    pub method: Method,
    pub animated: bool,
}

/// The sizes the spec suggests servers make.
const STANDARD_SIZES: [(u32, u32, Method); 5] = [
    (32, 32, Method::Crop),
    (96, 96, Method::Crop),
    (320, 240, Method::Scale),
    (640, 480, Method::Scale),
    (800, 600, Method::Scale),
];

impl ThumbnailSpec {
    /// The standard size to serve for a request, as Synapse picks it: the smallest at least
    /// as large as asked, among sizes of the asked method (a crop request falls back to scaled
    /// sizes; a scale request is never cropped), else the largest scaled size.
    pub fn for_request(width: u32, height: u32, method: Method, animated: bool) -> Self {
        let area = |(w, h, _): &&(u32, u32, Method)| u64::from(*w) * u64::from(*h);
        let fits = |(w, h, _): &&(u32, u32, Method)| *w >= width && *h >= height;
        let of = |m: Method| STANDARD_SIZES.iter().filter(move |size| size.2 == m);
        let pick = match method {
            Method::Crop => of(Method::Crop)
                .filter(fits)
                .min_by_key(area)
                .or_else(|| of(Method::Scale).filter(fits).min_by_key(area)),
            Method::Scale => of(Method::Scale).filter(fits).min_by_key(area),
        }
        .or_else(|| of(Method::Scale).max_by_key(area))
        .copied()
        .unwrap_or((width, height, method));
        Self {
            width: pick.0,
            height: pick.1,
            method: pick.2,
            animated,
        }
    }

    /// The cache name of this size: `96x96-crop`, `320x240-scale-animated`.
    pub fn name(&self) -> String {
        let method = match self.method {
            Method::Crop => "crop",
            Method::Scale => "scale",
        };
        let animated = if self.animated { "-animated" } else { "" };
        format!("{}x{}-{method}{animated}", self.width, self.height)
    }
}

/// A thumbnail ready to send.
pub struct Thumbnail {
    pub path: PathBuf,
    pub content_type: String,
    pub size: u64,
}

/// Bounds and bookkeeping for thumbnail generation.
pub struct Thumbnailer {
    max_pixels: u64,
    slots: tokio::sync::Semaphore,
    /// One generation per (blob, size) at a time: concurrent requests wait for the first.
    making: KeyedLocks<(String, String)>,
}

impl Thumbnailer {
    pub fn new(max_pixels: u64) -> Self {
        Self {
            max_pixels: max_pixels.max(1),
            slots: tokio::sync::Semaphore::new(PARALLEL_THUMBNAILS),
            making: KeyedLocks::default(),
        }
    }

    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        // The decoded image (up to 4 bytes a pixel, 8 for 16-bit PNGs) and the decoder's own
        // buffers.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(10));
        limits
    }
}

fn too_large(message: impl Into<String>) -> Error {
    media_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", message)
}

fn cannot_thumbnail(detail: impl std::fmt::Display) -> Error {
    media_error(
        StatusCode::BAD_REQUEST,
        "M_UNKNOWN",
        format!("Cannot make a thumbnail of this media: {detail}"),
    )
}

/// Maps a decoding failure: limits are the image's size, anything else its content.
fn decode_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(limit) => {
            too_large(format!("The image is too large to thumbnail ({limit})"))
        }
        other => cannot_thumbnail(other),
    }
}

impl MediaService {
    /// The thumbnail of `record` for `spec`, made and cached on first use.
    pub async fn thumbnail(
        self: &Arc<Self>,
        record: MediaRecord,
        spec: ThumbnailSpec,
    ) -> Result<Thumbnail> {
        if spec.width == 0 || spec.height == 0 {
            return Err(Error::invalid_param("width and height must be at least 1"));
        }
        let _slot = self
            .thumbnailer
            .slots
            .acquire()
            .await
            .map_err(|e| Error::internal(format!("thumbnail slots: {e}")))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.thumbnail_blocking(&record, spec))
            .await
            .map_err(|e| Error::internal(format!("thumbnail task: {e}")))?
    }

    fn thumbnail_blocking(&self, record: &MediaRecord, spec: ThumbnailSpec) -> Result<Thumbnail> {
        let digest = record
            .digest()
            .ok_or_else(|| Error::internal("media record with a bad digest"))?;
        let name = spec.name();
        let key = (record.sha256.clone(), name.clone());
        let _making = self.thumbnailer.making.lock(&key);
        let path = self.store.thumbnail_path(&digest, &name);
        if let Some(cached) = self.thumbnails.get(&key)?
            && path.exists()
        {
            return Ok(Thumbnail {
                path,
                content_type: cached.content_type,
                size: cached.size,
            });
        }
        let original = std::fs::read(self.store.blob_path(&digest))
            .map_err(|e| Error::internal(format!("reading media for a thumbnail: {e}")))?;
        let made = self.thumbnailer.make(&original, spec)?;
        self.store
            .write_thumbnail(&digest, &name, &made.bytes)
            .map_err(|e| Error::internal(format!("writing a thumbnail: {e}")))?;
        let thumb = ThumbnailRecord {
            content_type: made.content_type.to_owned(),
            size: made.bytes.len() as u64,
            width: made.width,
            height: made.height,
        };
        let mut batch = self.db.batch();
        self.thumbnails.put(&mut batch, &key, &thumb);
        self.db.write(batch)?;
        Ok(Thumbnail {
            path,
            content_type: thumb.content_type,
            size: thumb.size,
        })
    }

    /// The cached thumbnails of a blob (tests and the admin CLI).
    pub fn cached_thumbnails(&self, sha256_hex: &str) -> Result<Vec<(String, ThumbnailRecord)>> {
        Ok(self
            .thumbnails
            .scan_prefix(&codec::prefix(sha256_hex))?
            .into_iter()
            .map(|((_, name), record)| (name, record))
            .collect())
    }
}

/// An encoded thumbnail.
#[derive(Debug)]
pub struct Made {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

impl Thumbnailer {
    /// Decodes `original` within the limits and encodes its thumbnail.
    pub fn make(&self, original: &[u8], spec: ThumbnailSpec) -> Result<Made> {
        let reader = ImageReader::new(Cursor::new(original))
            .with_guessed_format()
            .map_err(cannot_thumbnail)?;
        let format = reader
            .format()
            .ok_or_else(|| cannot_thumbnail("not an image format this server reads"))?;
        let (width, height) = reader.into_dimensions().map_err(decode_error)?;
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(too_large(format!(
                "The image is {width}×{height}, more than the {} pixels this server thumbnails",
                self.max_pixels
            )));
        }
        if spec.animated
            && let Some(frames) = self.frames(original, format)?
        {
            return encode_animation(frames, spec);
        }
        let mut reader = ImageReader::with_format(Cursor::new(original), format);
        reader.limits(self.limits());
        let image = reader.decode().map_err(decode_error)?;
        let thumb = resize(&image, spec);
        encode_still(&thumb, format)
    }

    /// The frames of an animated image, within the limits; `None` for a still one.
    fn frames(&self, original: &[u8], format: ImageFormat) -> Result<Option<Vec<Frame>>> {
        let frames = match format {
            ImageFormat::Gif => {
                let mut decoder = GifDecoder::new(Cursor::new(original)).map_err(decode_error)?;
                decoder.set_limits(self.limits()).map_err(decode_error)?;
                decoder.into_frames()
            }
            ImageFormat::WebP => {
                let mut decoder = WebPDecoder::new(Cursor::new(original)).map_err(decode_error)?;
                if !decoder.has_animation() {
                    return Ok(None);
                }
                decoder.set_limits(self.limits()).map_err(decode_error)?;
                decoder.into_frames()
            }
            ImageFormat::Png => {
                let mut decoder = PngDecoder::new(Cursor::new(original)).map_err(decode_error)?;
                if !decoder.is_apng().map_err(decode_error)? {
                    return Ok(None);
                }
                decoder.set_limits(self.limits()).map_err(decode_error)?;
                decoder.apng().map_err(decode_error)?.into_frames()
            }
            _ => return Ok(None),
        };
        // Every frame is a whole canvas: the budget counts all of them together.
        let budget = self.max_pixels.saturating_mul(4);
        let mut spent = 0u64;
        let mut kept = Vec::new();
        for frame in frames.take(MAX_FRAMES) {
            let frame = frame.map_err(decode_error)?;
            let (w, h) = frame.buffer().dimensions();
            spent += u64::from(w) * u64::from(h);
            if spent > budget {
                return Err(too_large("The animation has too many pixels to thumbnail"));
            }
            kept.push(frame);
        }
        Ok((kept.len() > 1).then_some(kept))
    }
}

/// The thumbnail's pixels: never larger than the original (the spec forbids upscaling).
fn resize(image: &DynamicImage, spec: ThumbnailSpec) -> DynamicImage {
    let (w, h) = (image.width().max(1), image.height().max(1));
    match spec.method {
        Method::Scale => {
            if w <= spec.width && h <= spec.height {
                return image.clone();
            }
            image.thumbnail(spec.width, spec.height)
        }
        Method::Crop => {
            // The centred region with the box's aspect ratio, then scaled down to the box.
            let (bw, bh) = (u64::from(spec.width), u64::from(spec.height));
            let (cw, ch) = if u64::from(w) * bh > u64::from(h) * bw {
                ((u64::from(h) * bw / bh).max(1) as u32, h)
            } else {
                (w, (u64::from(w) * bh / bw).max(1) as u32)
            };
            let cropped = image.crop_imm((w - cw) / 2, (h - ch) / 2, cw, ch);
            if cw <= spec.width {
                return cropped;
            }
            cropped.thumbnail_exact(spec.width, spec.height)
        }
    }
}

/// JPEG stays JPEG (smaller for photos); everything else becomes PNG (lossless, alpha kept).
fn encode_still(image: &DynamicImage, source: ImageFormat) -> Result<Made> {
    let mut bytes = Vec::new();
    let content_type = if source == ImageFormat::Jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85);
        image
            .to_rgb8()
            .write_with_encoder(encoder)
            .map_err(|e| Error::internal(format!("encoding a thumbnail: {e}")))?;
        "image/jpeg"
    } else {
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(|e| Error::internal(format!("encoding a thumbnail: {e}")))?;
        "image/png"
    };
    Ok(Made {
        bytes,
        content_type,
        width: image.width(),
        height: image.height(),
    })
}

/// Resizes each frame and encodes them as an animated GIF (the one animated format `image`
/// writes).
fn encode_animation(frames: Vec<Frame>, spec: ThumbnailSpec) -> Result<Made> {
    let mut bytes = Vec::new();
    let (mut width, mut height) = (0, 0);
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(|e| Error::internal(format!("encoding a thumbnail: {e}")))?;
        for frame in frames {
            let delay = frame.delay();
            let small = resize(&DynamicImage::ImageRgba8(frame.into_buffer()), spec).to_rgba8();
            (width, height) = small.dimensions();
            encoder
                .encode_frame(Frame::from_parts(small, 0, 0, delay))
                .map_err(|e| Error::internal(format!("encoding a thumbnail: {e}")))?;
        }
    }
    Ok(Made {
        bytes,
        content_type: "image/gif",
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap()
    }

    #[test]
    fn requests_snap_to_standard_sizes() {
        let spec = ThumbnailSpec::for_request(32, 32, Method::Scale, false);
        assert_eq!(
            (spec.width, spec.height, spec.method),
            (320, 240, Method::Scale)
        );
        let spec = ThumbnailSpec::for_request(200, 200, Method::Crop, false);
        assert_eq!(
            (spec.width, spec.height, spec.method),
            (320, 240, Method::Scale)
        );
        let spec = ThumbnailSpec::for_request(64, 64, Method::Crop, false);
        assert_eq!(
            (spec.width, spec.height, spec.method),
            (96, 96, Method::Crop)
        );
        let spec = ThumbnailSpec::for_request(320, 240, Method::Scale, false);
        assert_eq!((spec.width, spec.height), (320, 240));
        let spec = ThumbnailSpec::for_request(4000, 4000, Method::Crop, true);
        assert_eq!(
            (spec.width, spec.height, spec.method),
            (800, 600, Method::Scale)
        );
        assert_eq!(spec.name(), "800x600-scale-animated");
    }

    #[test]
    fn crop_and_scale_produce_the_box_without_upscaling() {
        let thumbnailer = Thumbnailer::new(1_000_000);
        let source = png(640, 480);
        let crop = ThumbnailSpec::for_request(96, 96, Method::Crop, false);
        let made = thumbnailer.make(&source, crop).unwrap();
        assert_eq!(made.content_type, "image/png");
        assert_eq!(dims(&made.bytes), (96, 96));
        let scale = ThumbnailSpec::for_request(320, 240, Method::Scale, false);
        assert_eq!(
            dims(&thumbnailer.make(&source, scale).unwrap().bytes),
            (320, 240)
        );
        let small = png(100, 50);
        assert_eq!(
            dims(&thumbnailer.make(&small, scale).unwrap().bytes),
            (100, 50)
        );
        // 100×50 cropped to a square without upscaling: its centred 50×50.
        assert_eq!(
            dims(
                &thumbnailer
                    .make(
                        &small,
                        ThumbnailSpec::for_request(96, 96, Method::Crop, false)
                    )
                    .unwrap()
                    .bytes
            ),
            (50, 50)
        );
    }

    #[test]
    fn bombs_and_garbage_are_errors() {
        let thumbnailer = Thumbnailer::new(1_000_000);
        let spec = ThumbnailSpec::for_request(32, 32, Method::Crop, false);
        let big = png(2000, 1000);
        assert_eq!(
            thumbnailer.make(&big, spec).unwrap_err().errcode(),
            "M_TOO_LARGE"
        );
        assert_eq!(
            thumbnailer
                .make(b"not an image", spec)
                .unwrap_err()
                .errcode(),
            "M_UNKNOWN"
        );
        let mut truncated = png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert_eq!(
            thumbnailer.make(&truncated, spec).unwrap_err().errcode(),
            "M_UNKNOWN"
        );
    }
}
