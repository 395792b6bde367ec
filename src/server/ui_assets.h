/*
 * ui_assets.h: the web UI files embedded into the binary by scripts/embed-ui
 * (generated build/gen/ui_assets.c). The table ends with a NULL path.
 */
#ifndef HEARTH_SERVER_UI_ASSETS_H
#define HEARTH_SERVER_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
    const char *path;          /* "/index.html", "/app.js", ... */
    const unsigned char *data; /* NUL-terminated for convenience */
    size_t size;
};

extern const struct ui_asset ui_assets[];

#endif
