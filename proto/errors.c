/* Messages and symbolic names for the AX_E* codes of include/axactor/errors.h.
 * One table, indexed by -code, so a new code is one new row here, one in errors.h and
 * one in PROTOCOL.md (tests/test_proto_spec.c checks all three agree). */
#include "axactor/errors.h"

#include <stddef.h>

static const struct {
    const char *name, *msg;
} errtab[] = {
    [0] = {"OK", "success"},
    [-AX_ENOMEM] = {"ENOMEM", "out of memory"},
    [-AX_EINVAL] = {"EINVAL", "invalid argument"},
    [-AX_EFULL] = {"EFULL", "mailbox full"},
    [-AX_ENOPROC] = {"ENOPROC", "no such actor (stopped, or a stale ref)"},
    [-AX_ETIMEDOUT] = {"ETIMEDOUT", "ask timed out"},
    [-AX_EPROTO] = {"EPROTO", "malformed frame or body"},
    [-AX_ETOOBIG] = {"ETOOBIG", "frame or value exceeds a limit"},
    [-AX_ENOTYPE] = {"ENOTYPE", "unknown actor type"},
    [-AX_ENOMSG] = {"ENOMSG", "actor type has no handler for this message"},
    [-AX_EEXIST] = {"EEXIST", "name already taken"},
    [-AX_EABI] = {"EABI", "plugin ABI mismatch or missing descriptor"},
    [-AX_EIO] = {"EIO", "I/O error"},
    [-AX_ECONN] = {"ECONN", "connection failed or lost"},
    [-AX_EPERM] = {"EPERM", "permission denied"},
    [-AX_ECONFIG] = {"ECONFIG", "bad configuration"},
    [-AX_ENOTFOUND] = {"ENOTFOUND", "not found"},
    [-AX_ESTALE] = {"ESTALE", "stale epoch or session"},
    [-AX_EFAILED] = {"EFAILED", "the actor's handler failed"},
    [-AX_EVERSION] = {"EVERSION", "no common protocol version"},
    [-AX_EAUTH] = {"EAUTH", "authentication failed"},
    [-AX_ENOTSUP] = {"ENOTSUP", "operation not supported"},
    [-AX_ECANCELED] = {"ECANCELED", "canceled (the actor stopped or restarted before replying)"},
    [-AX_ENOCONN] = {"ENOCONN", "node lost (noconnection)"},
    [-AX_EBUSY] = {"EBUSY", "resource busy (retry later)"},
};

_Static_assert(sizeof errtab / sizeof errtab[0] == 1 - AX_ERR_MIN, "errtab covers every code");

const char *ax_strerror(int code)
{
    if (code > 0 || code < AX_ERR_MIN || !errtab[-code].msg)
        return "unknown error";
    return errtab[-code].msg;
}

const char *ax_errname(int code)
{
    if (code > 0 || code < AX_ERR_MIN || !errtab[-code].name)
        return "EUNKNOWN";
    return errtab[-code].name;
}
