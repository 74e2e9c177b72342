/* Test plugin: declares ABI major 99, which the daemon must refuse (and keep running). */
#include <axactor/plugin.h>

typedef struct {
    int x;
} nothing;

static int noop(ax_ctx *cx, nothing *self, const ax_msg *m)
{
    (void)cx;
    (void)self;
    (void)m;
    return AX_OK;
}

AX_ACTOR_TYPE(bad_type, "bad_abi_type", nothing, NULL, NULL, AX_MSG("noop", noop));
static const ax_actor_type *const types_[] = {&bad_type};
AX_EXPORT extern const ax_plugin_desc axactor_plugin;
const ax_plugin_desc axactor_plugin = {
    .abi_major = 99, .abi_minor = 0, .size = sizeof(ax_plugin_desc), .signature = AX_BUILD_SIGNATURE,
    .name = "bad_abi", .types = types_, .n_types = 1,
};
