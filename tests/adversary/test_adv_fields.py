#!/usr/bin/python3
"""Adversary scenarios: fields of the handshake rewritten through the project's codec
(the frames stay well formed; only the cryptography can refuse them): blob_i and blob_r
swapped, identities swapped or renamed, suite and flag downgrades, key versions and
lifetimes changed, a confirmation flipped, bytes added or injected, and KDC answers
forged or tampered with on UDP only (which the responder checks again over TCP).

Each test runs its scenario (scenarios/NAME.rules) through kd3adv against the real
executables, asserts who refuses and how, that nothing is delivered and no party is
established, then that the same responder and KDC serve an honest session, and then
that the same rules disarmed let the session complete (advnet.py says more).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from advnet import (EXIT_AUTH, EXIT_HANDSHAKE, EXIT_OK, T_AUTH_I, T_BLOB, T_CONFIRM,  # noqa: E402
                    AdvTest, k, lines_for, rx)

FS = ("--forward-secret",)


def refused_by_initiator(text):
    return (rf"session 1 \(claiming alice\) failed: initiator sent ERROR BAD_AUTH "
            rf"\({rx(text)}\)$")


class Fields(AdvTest):
    def kdc_logged(self, who, kvnos, outcome):
        """The KDC's log line for the tampered request, as the KDC read it."""
        self.kdc_said(rf"udp 127\.0\.0\.1:\d+ {who} kvno {kvnos} {outcome}")

    # -- what the KDC seals ---------------------------------------------------------------

    def test_blob_i_and_blob_r_swapped(self):
        """M3's blobs swapped: the responder's blob is now the one sealed for the initiator
        (other key, other role label): it does not open; BAD_AUTH to I, exit 3."""
        net = self.net("blob_swap")
        self.refused_handshake(net, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported BAD_AUTH: {T_BLOB}",
                               rf"session 1 \(claiming alice\) failed: {rx(T_BLOB)}$")
        net.adv.fired(1, r"KDC->R/udp M3#1: swapped blob_i and blob_r \(\d+ bytes changed\)$")
        self.disarmed("blob_swap", [1])

    def test_lifetime_raised_in_m3(self):
        """M3's lifetime raised: it is in the AD and sealing key of both blobs, so the
        responder's does not open; BAD_AUTH to I, exit 3."""
        net = self.net("lifetime_m3")
        self.refused_handshake(net, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported BAD_AUTH: {T_BLOB}",
                               rf"session 1 \(claiming alice\) failed: {rx(T_BLOB)}$")
        net.adv.fired(1, r"KDC->R/udp M3#1: set lifetime=4000000 \(3 bytes changed\)$")
        self.disarmed("lifetime_m3", [1])

    def test_lifetime_raised_in_m4(self):
        """M4's lifetime raised on its way to the initiator: blob_i does not open; exit 4,
        ERROR BAD_AUTH to R."""
        net = self.net("lifetime_m4")
        self.refused_handshake(net, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
                               refused_by_initiator(T_BLOB))
        net.adv.fired(1, r"R->I/tcp M4#1: set lifetime=4000000 \(3 bytes changed\)$")
        self.disarmed("lifetime_m4", [1])

    def test_confirm_r_flipped(self):
        """A bit of M4's confirm_r: blob_i opens, the confirmation does not match: exit 4
        (key confirmation failed), ERROR BAD_AUTH to R."""
        net = self.net("confirm_flip")
        self.refused_handshake(net, EXIT_AUTH,
                               f"initiator: error: handshake failed: {T_CONFIRM}",
                               refused_by_initiator(T_CONFIRM))
        net.adv.fired(1, r"R->I/tcp M4#1: flipped a bit of confirm_r \(1 bytes changed\)$")
        self.disarmed("confirm_flip", [1])

    # -- identities -----------------------------------------------------------------------

    def test_ids_swapped_in_m1(self):
        """id_i and id_r swapped in M1: the responder sees an M1 for 'alice' and refuses
        it (UNKNOWN_PRINCIPAL) before asking the KDC; exit 3."""
        net = self.net("ids_swap_m1")
        self.refused_handshake(
            net, EXIT_HANDSHAKE,
            "initiator: error: responder reported UNKNOWN_PRINCIPAL: M1 names another responder",
            r"session 1 \(claiming bob\) failed: M1 is for responder 'alice', we are 'bob'$")
        net.adv.fired(1, r"I->R/tcp M1#1: swapped id_i and id_r \(10 bytes changed\)$")
        self.disarmed("ids_swap_m1", [1])

    def test_ids_swapped_in_m2(self):
        """id_i and id_r swapped inside every M2 (UDP and TCP): the KDC reads a request
        from bob to alice and checks auth_i with bob's key: BAD_AUTH (initiator)."""
        net = self.net("ids_swap_m2")
        self.kdc_refused(net, "i")
        self.kdc_logged("bob -> alice", "1/1", rf"BAD_AUTH \({T_AUTH_I}\)")
        self.assertEqual(len(net.adv.actions(1, expect=2)), 2)  # UDP, then TCP to confirm
        self.disarmed("ids_swap_m2", [1])

    def test_initiator_renamed(self):
        """alice's M1 made to claim carol, another principal of the realm: the responder
        cannot tell; the KDC checks auth_i with carol's key: BAD_AUTH; exit 3."""
        net = self.net("rename_initiator")
        self.kdc_refused(net, "i")
        self.kdc_logged("carol -> bob", "1/1", rf"BAD_AUTH \({T_AUTH_I}\)")
        self.disarmed("rename_initiator", [1])

    def test_initiator_renamed_to_an_unknown_principal(self):
        """M2 names 'mallory' as the initiator: UNKNOWN_PRINCIPAL from the KDC; exit 3."""
        net = self.net("rename_initiator_unknown")
        self.kdc_refused(net, "i", code="UNKNOWN_PRINCIPAL", text="unknown initiator principal")
        self.kdc_logged("mallory -> bob", "1/1", "UNKNOWN_PRINCIPAL")
        self.disarmed("rename_initiator_unknown", [1])

    def test_responder_renamed_in_m2(self):
        """M2 names carol as the responder (the KDC would seal blob_r for her): auth_i
        covers id_r: BAD_AUTH (initiator); exit 3."""
        net = self.net("rename_responder_m2")
        self.kdc_refused(net, "i")
        self.kdc_logged("alice -> carol", "1/1", rf"BAD_AUTH \({T_AUTH_I}\)")
        self.disarmed("rename_responder_m2", [1])

    # -- downgrades -----------------------------------------------------------------------

    def test_suite_downgrade_in_m1(self):
        """M1's suite 0x02 -> 0x01 (the responder allows both): BAD_AUTH at the KDC."""
        net = self.net("suite_downgrade")
        self.kdc_refused(net, "i")
        net.adv.fired(1, r"I->R/tcp M1#1: set suite=1 \(1 bytes changed\)$")
        self.disarmed("suite_downgrade", [1])

    def test_suite_downgrade_in_m2(self):
        """The same inside every M2: BAD_AUTH at the KDC."""
        net = self.net("suite_downgrade_m2")
        self.kdc_refused(net, "i")
        self.disarmed("suite_downgrade_m2", [1])

    def test_forward_secrecy_removed_from_m1(self):
        """--forward-secret: flags bit 0 cleared and e_i removed (116 -> 84 bytes, well
        formed): BAD_AUTH at the KDC; exit 3."""
        net = self.net("flag_downgrade")
        self.kdc_refused(net, "i", extra=FS)
        net.adv.fired(1, r"I->R/tcp M1#1: set flags=0 \(116 -> 84 bytes\)$")
        self.disarmed("flag_downgrade", [1], extra=FS)

    def test_forward_secrecy_removed_from_m2(self):
        """--forward-secret: the flag cleared inside every M2, e_i and e_r removed (218 ->
        154 bytes): BAD_AUTH at the KDC; exit 3."""
        net = self.net("flag_downgrade_m2")
        self.kdc_refused(net, "i", extra=FS)
        net.adv.fired(1, r"R->KDC/udp M2#1: set flags=0 \(218 -> 154 bytes\)$")
        self.disarmed("flag_downgrade_m2", [1], extra=FS)

    def test_unknown_flag_bit(self):
        """An unknown flag bit (0x02) in M1: the responder refuses it before reading
        further (the layout could differ): UNSUPPORTED; exit 3."""
        net = self.net("flag_unknown")
        self.refused_handshake(
            net, EXIT_HANDSHAKE,
            "initiator: error: responder reported UNSUPPORTED: unsupported version, suite or flags",
            r"session 1 failed: unsupported version, suite or flags$")
        self.disarmed("flag_unknown", [1])

    # -- key versions ---------------------------------------------------------------------

    def test_kvno_i_changed(self):
        """M1's kvno_i 1 -> 2 (not live): KVNO_UNKNOWN from the KDC; exit 3."""
        net = self.net("kvno_i")
        self.kdc_refused(net, "i", code="KVNO_UNKNOWN", text="initiator key version is not live")
        self.kdc_logged("alice -> bob", "2/1", "KVNO_UNKNOWN")
        self.disarmed("kvno_i", [1])

    def test_kvno_r_changed(self):
        """Every M2's kvno_r 1 -> 2 (not live): KVNO_UNKNOWN from the KDC; exit 3."""
        net = self.net("kvno_r")
        self.kdc_refused(net, "r", code="KVNO_UNKNOWN", text="responder key version is not live")
        self.kdc_logged("alice -> bob", "1/2", "KVNO_UNKNOWN")
        self.disarmed("kvno_r", [1])

    def test_kvno_r_changed_in_m4(self):
        """M4's kvno_r changed: the initiator's TH (which has kvno_r) differs: blob_i does
        not open; exit 4."""
        net = self.net("kvno_r_m4")
        self.refused_handshake(net, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
                               refused_by_initiator(T_BLOB))
        self.disarmed("kvno_r_m4", [1])

    # -- malformed and forged -------------------------------------------------------------

    def test_m1_extended(self):
        """One byte more in M1's body (its length field fixed): the strict parser refuses
        trailing bytes: MALFORMED from the responder; exit 3."""
        net = self.net("m1_extended")
        self.refused_handshake(
            net, EXIT_HANDSHAKE,
            "initiator: error: responder reported MALFORMED: malformed message",
            r"session 1 failed: malformed message$")
        net.adv.fired(1, r"I->R/tcp M1#1: extended by 1 zero bytes \(84 -> 85 bytes\)$")
        self.disarmed("m1_extended", [1])

    def test_bytes_injected_before_m1(self):
        """A version-2 header injected ahead of M1: the responder's stream reader refuses
        the stream (UNSUPPORTED); exit 3."""
        net = self.net("inject_bad_version")
        self.refused_handshake(
            net, EXIT_HANDSHAKE,
            "initiator: error: responder reported UNSUPPORTED: not a kd3 frame",
            r"session 1 failed: unsupported version, suite or flags: the initiator's bytes are "
            r"not kd3 frames$")
        self.disarmed("inject_bad_version", [1])

    def test_forged_kdc_error_over_udp(self):
        """The KDC's UDP answer replaced by a forged ERROR BAD_AUTH: ERROR is
        unauthenticated, so the responder asks again over TCP, gets the M3, logs that
        the UDP ERROR was not confirmed, and the session completes."""
        net = self.net("forged_kdc_error")
        lines = lines_for("forged", 3)
        r = net.run(lines)
        self.assertEqual(r.rc, EXIT_OK, r)
        net.adv.fired(1, r"KDC->R/udp M3#1: replaced by hex \(13 bytes\)$")
        net.resp_log(r"session 1: the UDP ERROR BAD_AUTH was not confirmed: KDC \S+ answered "
                     r"M3 over TCP; the ERROR was forged or stray, ignored$")
        net.control(before=lines)
        quiet = self.disarmed("forged_kdc_error", [1])
        self.assertNotIn("over TCP", quiet.resp.text())

    def test_m2_tampered_on_udp_only(self):
        """Only the UDP M2 tampered with (ids swapped): the KDC's BAD_AUTH over UDP is not
        believed; the responder asks over TCP, where the M2 is intact, and the session
        completes: a datagram path alone cannot end an exchange."""
        net = self.net("tampered_udp_only")
        lines = lines_for("udp-only", 3)
        r = net.run(lines)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.kdc_logged("bob -> alice", "1/1", rf"BAD_AUTH \({T_AUTH_I}\)")
        self.kdc_said(r"tcp 127\.0\.0\.1:\d+ alice -> bob kvno 1/1 OK")
        net.resp_log(r"session 1: the UDP ERROR BAD_AUTH was not confirmed")
        net.control(before=lines)
        quiet = self.disarmed("tampered_udp_only", [1])
        self.assertNotIn("over TCP", quiet.resp.text())


class LiveKeyVersions(AdvTest):
    """alice has two live key versions (rotated): her initiator uses kvno 2."""

    @classmethod
    def prepare_realm(cls, realm):
        k.run([k.exe("kdc"), "rotate", "alice", *realm.dbargs,
               "--keyfile", realm.keyfile("alice")], check=True)

    def test_kvno_i_changed_to_another_live_version(self):
        """kvno_i 2 -> 1, a live version: the KDC checks auth_i with alice's kvno 1 key:
        BAD_AUTH (initiator); exit 3. A kvno names a key; it cannot be swapped for
        another."""
        net = self.net("kvno_i_live")
        self.kdc_refused(net, "i")
        self.kdc_said(rf"udp 127\.0\.0\.1:\d+ alice -> bob kvno 1/1 BAD_AUTH \({T_AUTH_I}\)")
        self.disarmed("kvno_i_live", [1])
        self.kdc_said(r"alice -> bob kvno 2/1 OK")


if __name__ == "__main__":
    unittest.main(verbosity=2)
