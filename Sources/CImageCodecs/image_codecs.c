#include "image_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

static void set_error(char *error, size_t error_size, const char *message) {
    if (error_size == 0) return;
    snprintf(error, error_size, "%s", message);
}

/// Images above this many pixels are refused before any allocation (a hostile header can claim
/// 2^31 × 2^31).
static const size_t max_pixels = (size_t)1 << 26;

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char message[256];
} png_source;

static void png_read_memory(png_structp png, png_bytep out, size_t length) {
    png_source *source = png_get_io_ptr(png);
    if (length > source->size - source->offset) png_error(png, "truncated file");
    memcpy(out, source->data + source->offset, length);
    source->offset += length;
}

static void png_fail(png_structp png, png_const_charp message) {
    png_source *source = png_get_error_ptr(png);
    snprintf(source->message, sizeof source->message, "%s", message);
    png_longjmp(png, 1);
}

/// Warnings (an ancillary chunk with a bad CRC, an odd color profile) do not change the pixels.
static void png_warn(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

int fedtrain_png_decode(const uint8_t *data, size_t size, fedtrain_image *image, char *error, size_t error_size) {
    png_source source = {data, size, 0, ""};
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    memset(image, 0, sizeof *image);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        set_error(error, error_size, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        set_error(error, error_size, source.message);
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, &source, png_read_memory);
    png_set_user_limits(png, 16384, 16384);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if ((size_t)width * height > max_pixels) png_error(png, "image too large");
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    // The stored samples at 8 bits, no color or gamma conversion: palettes expand to RGB,
    // transparency to an alpha channel, 1/2/4-bit gray to 8 bits, 16-bit samples round(v·255/65535).
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t row = png_get_rowbytes(png, info);
    if (row != (size_t)width * channels) png_error(png, "unexpected row layout");
    pixels = malloc(row * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + row * y;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    image->pixels = pixels;
    image->width = (int)width;
    image->height = (int)height;
    image->channels = channels;
    return 0;
}

/// libjpeg's error manager with a jump back into the call that failed.
typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_fail(j_common_ptr info) {
    jpeg_failure *failure = (jpeg_failure *)info->err;
    (*info->err->format_message)(info, failure->message);
    longjmp(failure->jump, 1);
}

/// Warnings (corrupt data libjpeg would paper over, a premature end of data) are failures:
/// an image decoded from a damaged file is not the image.
static void jpeg_warn(j_common_ptr info, int level) {
    if (level < 0) jpeg_fail(info);
}

int fedtrain_jpeg_decode(const uint8_t *data, size_t size, fedtrain_image *image, char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    jpeg_failure failure;
    uint8_t *volatile pixels = NULL;
    memset(image, 0, sizeof *image);
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    failure.manager.emit_message = jpeg_warn;
    if (setjmp(failure.jump)) {
        set_error(error, error_size, failure.message);
        jpeg_destroy_decompress(&info);
        free(pixels);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if ((size_t)info.image_width * info.image_height > max_pixels) {
        set_error(error, error_size, "image too large");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t row = (size_t)info.output_width * info.output_components;
    pixels = malloc(row * info.output_height);
    if (!pixels) {
        jpeg_destroy_decompress(&info);
        set_error(error, error_size, "out of memory");
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW line = pixels + row * info.output_scanline;
        jpeg_read_scanlines(&info, &line, 1);
    }
    jpeg_finish_decompress(&info);
    image->pixels = pixels;
    image->width = (int)info.output_width;
    image->height = (int)info.output_height;
    image->channels = info.output_components;
    jpeg_destroy_decompress(&info);
    return 0;
}

int fedtrain_jpeg_encode(const fedtrain_image *image, int quality, int progressive, uint8_t **out, size_t *out_size,
                         char *error, size_t error_size) {
    struct jpeg_compress_struct info;
    jpeg_failure failure;
    unsigned char *buffer = NULL;
    unsigned long length = 0;
    *out = NULL;
    *out_size = 0;
    if (image->channels != 1 && image->channels != 3) {
        set_error(error, error_size, "JPEG takes 1 or 3 channels");
        return -1;
    }
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    if (setjmp(failure.jump)) {
        set_error(error, error_size, failure.message);
        jpeg_destroy_compress(&info);
        free(buffer);
        return -1;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, &buffer, &length);
    info.image_width = (JDIMENSION)image->width;
    info.image_height = (JDIMENSION)image->height;
    info.input_components = image->channels;
    info.in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    if (progressive) jpeg_simple_progression(&info);
    jpeg_start_compress(&info, TRUE);
    size_t row = (size_t)image->width * image->channels;
    while (info.next_scanline < info.image_height) {
        JSAMPROW line = image->pixels + row * info.next_scanline;
        jpeg_write_scanlines(&info, &line, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    *out = buffer;
    *out_size = length;
    return 0;
}

int fedtrain_png_encode(const fedtrain_image *image, int bit_depth, int palette, uint8_t **out, size_t *out_size,
                        char *error, size_t error_size) {
    static const png_uint_32 formats[] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB, PNG_FORMAT_RGBA};
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    png.width = (png_uint_32)image->width;
    png.height = (png_uint_32)image->height;
    *out = NULL;
    *out_size = 0;
    if (image->channels < 1 || image->channels > 4) {
        set_error(error, error_size, "PNG takes 1 to 4 channels");
        return -1;
    }
    png.format = formats[image->channels];
    size_t samples = (size_t)image->width * image->height * image->channels;
    const void *buffer = image->pixels;
    uint16_t *wide = NULL;
    uint8_t *indices = NULL;
    uint8_t colormap[256 * 4];
    if (palette) {
        // Distinct pixels become the color map, in order of first appearance.
        size_t pixels = (size_t)image->width * image->height;
        int c = image->channels, entries = 0;
        indices = malloc(pixels);
        if (!indices) { set_error(error, error_size, "out of memory"); return -1; }
        for (size_t p = 0; p < pixels; p++) {
            const uint8_t *pixel = image->pixels + p * c;
            int found = -1;
            for (int e = 0; e < entries && found < 0; e++) if (memcmp(colormap + e * c, pixel, c) == 0) found = e;
            if (found < 0) {
                if (entries == 256) { free(indices); set_error(error, error_size, "more than 256 colors"); return -1; }
                memcpy(colormap + entries * c, pixel, c);
                found = entries++;
            }
            indices[p] = (uint8_t)found;
        }
        png.format |= PNG_FORMAT_FLAG_COLORMAP;
        png.colormap_entries = (png_uint_32)entries;
        buffer = indices;
    } else if (bit_depth == 16) {
        wide = malloc(samples * 2);
        if (!wide) { set_error(error, error_size, "out of memory"); return -1; }
        for (size_t i = 0; i < samples; i++) wide[i] = (uint16_t)(image->pixels[i] * 257);
        png.format |= PNG_FORMAT_FLAG_LINEAR;
        buffer = wide;
    }
    png_alloc_size_t length = 0;
    int ok = png_image_write_get_memory_size(png, length, 0, buffer, 0, palette ? colormap : NULL);
    if (ok) {
        *out = malloc(length);
        ok = *out != NULL && png_image_write_to_memory(&png, *out, &length, 0, buffer, 0, palette ? colormap : NULL);
    }
    free(wide);
    free(indices);
    if (!ok) {
        set_error(error, error_size, png.message[0] ? png.message : "out of memory");
        free(*out);
        *out = NULL;
        png_image_free(&png);
        return -1;
    }
    *out_size = length;
    return 0;
}

void fedtrain_image_free(fedtrain_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}

void fedtrain_image_free_bytes(uint8_t *bytes) { free(bytes); }
