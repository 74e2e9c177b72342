/* Test plugin: the descriptor symbol points one byte into a data object, so it is not
 * aligned for an ax_plugin_desc. The loader must refuse it before reading any field
 * (UBSan reported the misaligned read before). */
#include <axactor/plugin.h>

static int noop(ax_ctx *cx, void *self, const ax_msg *m)
{
    (void)cx, (void)self, (void)m;
    return AX_OK;
}
AX_ACTOR_TYPE(mis_type, "misaligned_type", int, NULL, NULL, AX_MSG("noop", noop));
static const ax_actor_type *types_[] = {&mis_type};

struct __attribute__((packed)) holder {
    char pad;
    ax_plugin_desc d;
};
__attribute__((used)) static const struct holder holder_ = {
    0,
    {.abi_major = AX_ABI_MAJOR, .abi_minor = AX_ABI_MINOR, .size = sizeof(ax_plugin_desc),
     .signature = AX_BUILD_SIGNATURE, .name = "misaligned", .types = types_, .n_types = 1}};
__asm__(".globl axactor_plugin\n"
        ".type axactor_plugin, @object\n"
        ".size axactor_plugin, 200\n"
        ".set axactor_plugin, holder_ + 1\n");
