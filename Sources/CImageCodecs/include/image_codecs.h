// PNG and JPEG through the system libraries (Debian: libpng-dev, libjpeg62-turbo-dev), behind
// calls that report errors by return value: libjpeg reports errors by longjmp, which Swift
// cannot catch, so the setjmp lives here.
#ifndef FEDTRAIN_IMAGE_CODECS_H
#define FEDTRAIN_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

/// A decoded image: 8-bit samples, row-major, `channels` interleaved per pixel (1 gray, 2 gray
/// and alpha, 3 RGB, 4 RGBA). `pixels` is malloc'd; free it with `fedtrain_image_free`.
typedef struct {
    uint8_t *pixels;
    int width;
    int height;
    int channels;
} fedtrain_image;

/// Decodes a PNG (any bit depth, gray, gray+alpha, RGB, RGBA, palette with or without
/// transparency) to 8-bit samples without color conversion: palette entries are expanded to
/// RGB or RGBA (transparency becomes alpha), 16-bit samples are scaled to 8 bits by
/// round(v·255/65535), no gamma or color-profile conversion. Returns 0, or -1 with
/// a message in `error` (`error_size` bytes, NUL-terminated).
int fedtrain_png_decode(const uint8_t *data, size_t size, fedtrain_image *image, char *error, size_t error_size);

/// Decodes a JPEG (baseline or progressive, gray or color) to 8-bit gray (1 channel) or RGB (3).
/// Returns 0, or -1 with a message; a truncated file is an error, not a gray-filled image.
int fedtrain_jpeg_decode(const uint8_t *data, size_t size, fedtrain_image *image, char *error, size_t error_size);

/// Encodes `image` (1 or 3 channels) as a JPEG of `quality` (1...100), progressive or baseline,
/// into a malloc'd buffer (`*out`, `*out_size`; free it with `fedtrain_image_free_bytes`).
int fedtrain_jpeg_encode(const fedtrain_image *image, int quality, int progressive, uint8_t **out, size_t *out_size,
                         char *error, size_t error_size);

/// Encodes `image` as a PNG: `bit_depth` 8 or 16 (16 stores each sample v as v·257), or, with
/// `palette` set (1 or 3 channels, 8-bit, at most 256 distinct pixels), as a palette PNG.
int fedtrain_png_encode(const fedtrain_image *image, int bit_depth, int palette, uint8_t **out, size_t *out_size,
                        char *error, size_t error_size);

void fedtrain_image_free(fedtrain_image *image);
void fedtrain_image_free_bytes(uint8_t *bytes);

#endif
