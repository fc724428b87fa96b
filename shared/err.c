#include "err.h"

#include <stddef.h>

struct err_entry {
	int code;
	const char *wire_name; /* NULL for local codes */
	const char *text;
};

static const struct err_entry err_table[] = {
    {KD3_OK, NULL, "success"},
    {KD3_E_MALFORMED, "MALFORMED", "malformed message"},
    {KD3_E_UNSUPPORTED, "UNSUPPORTED", "unsupported version, suite or flags"},
    {KD3_E_UNKNOWN_PRINCIPAL, "UNKNOWN_PRINCIPAL", "unknown principal"},
    {KD3_E_BAD_AUTH, "BAD_AUTH", "authenticator did not verify (wrong key?)"},
    {KD3_E_KVNO_UNKNOWN, "KVNO_UNKNOWN", "unknown key version (kvno)"},
    {KD3_E_POLICY_DENIED, "POLICY_DENIED", "denied by policy"},
    {KD3_E_BUSY, "BUSY", "server busy, try again later"},
    {KD3_E_INTERNAL, "INTERNAL", "internal error at the server"},
    {KD3_E_TIMEOUT, "TIMEOUT", "timed out"},
    {KD3_E_UNEXPECTED, NULL, "unexpected message for this state of the exchange"},
    {KD3_E_SAME_PRINCIPAL, NULL, "initiator and responder are the same principal"},
    {KD3_E_BLOB_AUTH, NULL, "sealed session key failed to open (wrong key or tampered)"},
    {KD3_E_CONFIRM, NULL, "key confirmation failed (tampered or spliced exchange)"},
    {KD3_E_NONCE, NULL, "reply for an exchange that is not open (replayed?)"},
    {KD3_E_RECORD_SEQ, NULL, "record out of sequence (replayed, dropped or reordered)"},
    {KD3_E_RECORD_AUTH, NULL, "record failed authentication (tampered or reflected)"},
    {KD3_E_RECORD_TYPE, NULL, "record type not allowed here"},
    {KD3_E_TRUNCATED, NULL, "session truncated: connection ended without CLOSE"},
    {KD3_E_PEER_ERROR, NULL, "peer reported an error"},
    {KD3_E_EXPIRED, NULL, "session key lifetime expired"},
    {KD3_E_CLOSED, NULL, "session closed"},
    {KD3_E_TOO_BIG, NULL, "message too large for one record"},
    {KD3_E_WEAK_KEY, NULL, "X25519 shared secret is zero (bad public key)"},
    {KD3_E_NO_SPACE, NULL, "output buffer too small"},
    {KD3_E_CRYPTO, NULL, "cryptographic library error"},
    {KD3_E_RNG, NULL, "random generator failed"},
    {KD3_E_NOMEM, NULL, "out of memory"},
    {KD3_E_IO, NULL, "input/output error"},
    {KD3_E_CONFIG, NULL, "configuration error"},
    {KD3_E_KEYFILE, NULL, "bad key file"},
    {KD3_E_KEYFILE_PERMS, NULL, "key file is readable by group or others (chmod 600)"},
    {KD3_E_DB, NULL, "database error"},
    {KD3_E_USAGE, NULL, "usage error"},
    {KD3_E_EXISTS, NULL, "already exists"},
    {KD3_E_NOT_FOUND, NULL, "not found"},
    {KD3_E_NO_KDC, NULL, "no KDC answered"},
    {KD3_E_ARG, NULL, "invalid argument"},
    {KD3_E_STATE, NULL, "not allowed in the session's current state"},
    {KD3_E_AGAIN, NULL, "nothing available now (more input needed, or output to take)"},
};

static const struct err_entry *err_find(int err)
{
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return NULL;
}

const char *kd3_strerror(int err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->text : "unknown error";
}

const char *kd3_err_wire_name(int err)
{
	const struct err_entry *e = err_find(err);
	return e && e->wire_name ? e->wire_name : "?";
}

int kd3_err_is_wire(int err)
{
	return err >= KD3_E_MALFORMED && err <= KD3_E_TIMEOUT;
}
