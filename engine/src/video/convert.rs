//! Decoded pictures to upright BGR images for OpenCV: swscale converts the pixel format (as
//! OpenCV's own FFmpeg backend does: bicubic, same size), OpenCV turns it upright.

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use opencv::core::{Mat, CV_8UC3};
use opencv::prelude::*;

/// Converts pictures of one stream; keeps swscale's context between pictures of the same
/// format and size.
pub(super) struct Converter {
    context: *mut ffi::SwsContext,
    /// Clockwise quarter turns: 0, 90, 180 or 270.
    rotation: u16,
}

// SAFETY: the swscale context is owned by this converter alone and used by one thread at a time
// (`&mut self`).
unsafe impl Send for Converter {}

impl Converter {
    pub fn new(rotation: u16) -> Self {
        Self {
            context: std::ptr::null_mut(),
            rotation,
        }
    }

    /// The picture as an upright BGR image.
    pub fn upright_bgr(&mut self, picture: &ffmpeg::frame::Video) -> Result<Mat, String> {
        let image = self.bgr_at(picture, picture.width(), picture.height())?;
        let turn = match self.rotation {
            90 => opencv::core::ROTATE_90_CLOCKWISE,
            180 => opencv::core::ROTATE_180,
            270 => opencv::core::ROTATE_90_COUNTERCLOCKWISE,
            _ => return Ok(image),
        };
        let mut upright = Mat::default();
        opencv::core::rotate(&image, &mut upright, turn).map_err(|e| e.to_string())?;
        Ok(upright)
    }

    /// The picture as BGR at `out_width` x `out_height` (as stored: not turned upright),
    /// converted and scaled in one pass (area averaging where it shrinks): cheaper than a
    /// full-size conversion and a resize after it.
    pub fn bgr_at(
        &mut self,
        picture: &ffmpeg::frame::Video,
        out_width: u32,
        out_height: u32,
    ) -> Result<Mat, String> {
        let (width, height) = (picture.width() as i32, picture.height() as i32);
        let (out_width, out_height) = (out_width as i32, out_height as i32);
        if width <= 0 || height <= 0 || out_width <= 0 || out_height <= 0 {
            return Err("the decoder returned an empty picture".into());
        }
        let flags = if (out_width, out_height) == (width, height) {
            ffi::SWS_BICUBIC
        } else {
            ffi::SWS_AREA
        };
        // SAFETY: `picture` is a decoded frame whose data/linesize describe `height` rows in its
        // own pixel format; `image` is a freshly allocated, continuous buffer of width x 3-byte
        // rows, `spare_rows` more than swscale fills (with stride out_width * 3): its overreach
        // stays inside the buffer.
        let image = unsafe {
            let raw = picture.as_ptr();
            self.context = ffi::sws_getCachedContext(
                self.context,
                width,
                height,
                std::mem::transmute::<i32, ffi::AVPixelFormat>((*raw).format),
                out_width,
                out_height,
                ffi::AVPixelFormat::AV_PIX_FMT_BGR24,
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            );
            if self.context.is_null() {
                return Err(format!(
                    "cannot convert pictures of pixel format {:?} to BGR",
                    picture.format()
                ));
            }
            // swscale's SIMD writes up to a few bytes past the end of a row: spare rows below
            // the picture take them, and are cut off afterwards (without reallocating).
            let spare_rows = (64 / (out_width * 3)) + 2;
            let mut image = Mat::new_rows_cols(out_height + spare_rows, out_width, CV_8UC3)
                .map_err(|e| e.to_string())?;
            let destination = [
                image.data_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ];
            let stride = [out_width * 3, 0, 0, 0];
            let rows = ffi::sws_scale(
                self.context,
                (*raw).data.as_ptr() as *const *const u8,
                (*raw).linesize.as_ptr(),
                0,
                height,
                destination.as_ptr(),
                stride.as_ptr(),
            );
            if rows != out_height {
                return Err("converting the picture to BGR failed".into());
            }
            image
                .resize(out_height as usize)
                .map_err(|e| e.to_string())?;
            image
        };
        Ok(image)
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        // SAFETY: the context was made by sws_getCachedContext (or is null, which is allowed).
        unsafe { ffi::sws_freeContext(self.context) }
    }
}
