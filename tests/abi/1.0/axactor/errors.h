/* axactor error codes: one enum shared by the plugin ABI, libaxclient and the wire
 * protocol (ERROR frames carry these values as i32). proto/PROTOCOL.md lists the same
 * table; tests/test_proto_spec.c checks that the two agree. Values never change meaning. */
#ifndef AXACTOR_ERRORS_H
#define AXACTOR_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum ax_err {
    AX_OK = 0,
    AX_ENOMEM = -1,     /* out of memory */
    AX_EINVAL = -2,     /* invalid argument */
    AX_EFULL = -3,      /* mailbox full (backpressure) */
    AX_ENOPROC = -4,    /* no such actor (stopped, or stale ref) */
    AX_ETIMEDOUT = -5,  /* ask timed out */
    AX_EPROTO = -6,     /* malformed frame or body */
    AX_ETOOBIG = -7,    /* frame or value exceeds a limit */
    AX_ENOTYPE = -8,    /* unknown actor type */
    AX_ENOMSG = -9,     /* actor type has no handler for this message */
    AX_EEXIST = -10,    /* name already taken */
    AX_EABI = -11,      /* plugin ABI mismatch or missing descriptor */
    AX_EIO = -12,       /* I/O error */
    AX_ECONN = -13,     /* connection failed or lost */
    AX_EPERM = -14,     /* permission denied */
    AX_ECONFIG = -15,   /* bad configuration */
    AX_ENOTFOUND = -16, /* not found (plugin, key, shard) */
    AX_ESTALE = -17,    /* stale epoch or session */
    AX_EFAILED = -18,   /* the actor's handler failed */
    AX_EVERSION = -19,  /* no common protocol version */
    AX_EAUTH = -20,     /* authentication failed */
    AX_ENOTSUP = -21,   /* operation not supported */
    AX_ECANCELED = -22, /* canceled (actor stopped or restarted before replying) */
    AX_ENOCONN = -23,   /* node lost (noconnection) */
    AX_EBUSY = -24,     /* resource busy (plugin in use, shard moving; retryable) */
    AX_ERR_MIN = -24
};

/* Static string for an error code; never NULL, unknown codes give "unknown error". */
const char *ax_strerror(int code);
/* Symbolic name ("EFULL") for an error code; never NULL. */
const char *ax_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
