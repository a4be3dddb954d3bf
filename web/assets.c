/*
 * The static files of web/static, embedded in the binary at build time
 * (the assembler's .incbin), so that the program, its page and its version
 * always travel together and the service needs no directory of its own. The
 * Makefile makes this object depend on every file in static/.
 */
#include <stddef.h>
#include <string.h>

#include "web.h"

#ifndef WEB_STATIC_DIR
#define WEB_STATIC_DIR "web/static"
#endif

/* sym##_start .. sym##_end hold the file's bytes */
#define EMBED(sym, file)                                                        \
	__asm__(".pushsection .rodata\n"                                        \
		".balign 16\n"                                                  \
		".type " #sym "_start, @object\n"                               \
		#sym "_start:\n"                                                \
		".incbin \"" WEB_STATIC_DIR "/" file "\"\n"                     \
		#sym "_end:\n"                                                  \
		".byte 0\n"                                                     \
		".popsection\n");                                               \
	extern const unsigned char sym##_start[] __asm__(#sym "_start");        \
	extern const unsigned char sym##_end[] __asm__(#sym "_end")

EMBED(hw_index_html, "index.html");
EMBED(hw_app_css, "app.css");
EMBED(hw_app_js, "app.js");
EMBED(hw_favicon_svg, "favicon.svg");

#define ASSET(url, type, sym) { url, type, sym##_start, 0 }

static struct web_asset assets[] = {
	ASSET("/", "text/html; charset=utf-8", hw_index_html),
	ASSET("/static/app.css", "text/css; charset=utf-8", hw_app_css),
	ASSET("/static/app.js", "text/javascript; charset=utf-8", hw_app_js),
	ASSET("/static/favicon.svg", "image/svg+xml", hw_favicon_svg),
	ASSET("/favicon.ico", "image/svg+xml", hw_favicon_svg),
};

static const unsigned char *const ends[] = {
	hw_index_html_end, hw_app_css_end, hw_app_js_end, hw_favicon_svg_end, hw_favicon_svg_end,
};

static void sizes(void)
{
	/* the ends are link-time addresses: filled on first use */
	if (assets[0].len)
		return;
	for (size_t i = 0; i < sizeof(assets) / sizeof(*assets); i++)
		assets[i].len = (size_t)(ends[i] - assets[i].data);
}

const struct web_asset *web_asset_find(const char *path)
{
	sizes();
	/* index 0 is the shell, served for the page routes only */
	for (size_t i = 1; i < sizeof(assets) / sizeof(*assets); i++)
		if (!strcmp(assets[i].path, path))
			return &assets[i];
	return NULL;
}

const struct web_asset *web_asset_shell(void)
{
	sizes();
	return &assets[0];
}
