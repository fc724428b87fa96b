-- kd3 protocol dissector for Wireshark (Lua plugin API, Wireshark 3.6 and later).
--
-- Decodes every kd3 frame (docs/PROTOCOL.md): messages 1-4 field by field, ERROR,
-- and RECORD headers (sequence number, sealed length) with the payload marked as
-- encrypted. TCP streams are reassembled into frames; each UDP datagram is one frame.
-- Recognised on the default ports (responder 7089/tcp, KDC 7088/udp+tcp); for other
-- ports use Decode As... -> kd3, or tshark -d tcp.port==PORT,kd3 -d udp.port==PORT,kd3.
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ (or run wireshark/tshark with
-- -X lua_script:kd3.lua). The kd3 package installs it in Wireshark's plugin folder.

local kd3 = Proto("kd3", "kd3 Key Distribution Protocol")

local HDR_LEN = 4
local FRAME_MAX = 4 + 16409

local TYPES = {
	[0x01] = "M1",
	[0x02] = "M2",
	[0x03] = "M3",
	[0x04] = "M4",
	[0x10] = "RECORD",
	[0x7f] = "ERROR",
}
local TYPE_DESC = {
	[0x01] = "M1 (initiator -> responder)",
	[0x02] = "M2 (responder -> KDC)",
	[0x03] = "M3 (KDC -> responder)",
	[0x04] = "M4 (responder -> initiator)",
	[0x10] = "RECORD",
	[0x7f] = "ERROR",
}
-- Body length bounds per type, from docs/PROTOCOL.md, "Framing".
local BODY_MIN = { [0x01] = 74, [0x02] = 144, [0x03] = 132, [0x04] = 120, [0x10] = 25, [0x7f] = 3 }
local BODY_MAX = { [0x01] = 614, [0x02] = 716, [0x03] = 132, [0x04] = 152, [0x10] = 16409, [0x7f] = 258 }

local SUITES = { [0x01] = "aes-256-gcm", [0x02] = "chacha20-poly1305" }
local ERRORS = {
	[1] = "MALFORMED",
	[2] = "UNSUPPORTED",
	[3] = "UNKNOWN_PRINCIPAL",
	[4] = "BAD_AUTH",
	[5] = "KVNO_UNKNOWN",
	[6] = "POLICY_DENIED",
	[7] = "BUSY",
	[8] = "INTERNAL",
	[9] = "TIMEOUT",
}
local FLAG_FS = 0x01

local f = {
	version = ProtoField.uint8("kd3.version", "Version", base.DEC),
	type = ProtoField.uint8("kd3.type", "Type", base.HEX, TYPE_DESC),
	length = ProtoField.uint16("kd3.length", "Body length", base.DEC),

	suite = ProtoField.uint8("kd3.suite", "Suite", base.HEX, SUITES),
	flags = ProtoField.uint8("kd3.flags", "Flags", base.HEX),
	flag_fs = ProtoField.bool("kd3.flags.forward_secret", "Forward-secret mode", 8, nil, FLAG_FS),
	id_i = ProtoField.string("kd3.id_i", "id_i (initiator)"),
	id_r = ProtoField.string("kd3.id_r", "id_r (responder)"),
	n_i = ProtoField.bytes("kd3.n_i", "n_i (initiator nonce)"),
	kvno_i = ProtoField.uint32("kd3.kvno_i", "kvno_i", base.DEC),
	e_i = ProtoField.bytes("kd3.e_i", "e_i (X25519 public key)"),
	auth_i = ProtoField.bytes("kd3.auth_i", "auth_i (HMAC)"),

	m1_len = ProtoField.uint16("kd3.m2.m1_length", "M1 body length", base.DEC),
	n_r = ProtoField.bytes("kd3.n_r", "n_r (responder nonce)"),
	kvno_r = ProtoField.uint32("kd3.kvno_r", "kvno_r", base.DEC),
	e_r = ProtoField.bytes("kd3.e_r", "e_r (X25519 public key)"),
	auth_r = ProtoField.bytes("kd3.auth_r", "auth_r (HMAC)"),

	lifetime = ProtoField.uint32("kd3.lifetime", "Key lifetime (s)", base.DEC),
	blob_r = ProtoField.bytes("kd3.blob_r", "blob_r (SK sealed to the responder)"),
	blob_i = ProtoField.bytes("kd3.blob_i", "blob_i (SK sealed to the initiator)"),
	confirm_r = ProtoField.bytes("kd3.confirm_r", "confirm_r (key confirmation)"),

	err_code = ProtoField.uint16("kd3.error.code", "Error code", base.DEC, ERRORS),
	err_text = ProtoField.string("kd3.error.text", "Error text"),

	seq = ProtoField.uint64("kd3.record.seq", "Sequence number", base.DEC),
	sealed_len = ProtoField.uint16("kd3.record.sealed_length", "Sealed length", base.DEC),
	sealed = ProtoField.bytes("kd3.record.sealed", "Encrypted (inner type, payload, tag)"),
}
kd3.fields = {
	f.version, f.type, f.length, f.suite, f.flags, f.flag_fs, f.id_i, f.id_r, f.n_i, f.kvno_i,
	f.e_i, f.auth_i, f.m1_len, f.n_r, f.kvno_r, f.e_r, f.auth_r, f.lifetime, f.blob_r, f.blob_i,
	f.confirm_r, f.err_code, f.err_text, f.seq, f.sealed_len, f.sealed,
}

local ef = {
	malformed = ProtoExpert.new("kd3.malformed", "Malformed kd3 frame", expert.group.MALFORMED,
		expert.severity.ERROR),
	version = ProtoExpert.new("kd3.bad_version", "Unsupported kd3 version", expert.group.PROTOCOL,
		expert.severity.WARN),
	error = ProtoExpert.new("kd3.error_frame", "kd3 ERROR", expert.group.RESPONSE_CODE,
		expert.severity.NOTE),
	encrypted = ProtoExpert.new("kd3.encrypted", "Encrypted record", expert.group.SECURITY,
		expert.severity.CHAT),
}
kd3.experts = { ef.malformed, ef.version, ef.error, ef.encrypted }

-- A bounds-checked cursor over one frame's body: every read first checks what is left.
local Cursor = {}
Cursor.__index = Cursor

local function cursor(tvb, off, len)
	return setmetatable({ tvb = tvb, off = off, stop = off + len, ok = true }, Cursor)
end

function Cursor:take(n)
	if not self.ok or self.off + n > self.stop then
		self.ok = false
		return nil
	end
	local r = self.tvb(self.off, n)
	self.off = self.off + n
	return r
end

function Cursor:left()
	return self.stop - self.off
end

local function add(tree, field, range)
	if range then
		tree:add(field, range)
	end
	return range
end

local function add_str(c, tree, field)
	local lr = c:take(1)
	if not lr then
		return nil
	end
	local n = lr:uint()
	local r = c:take(n)
	if r then
		tree:add(field, r)
		return r:string()
	end
	return nil
end

-- M1: suite | flags | id_i str | id_r str | n_i[32] | kvno_i u32 | [e_i[32]] | auth_i[32]
local function m1_fields(c, tree)
	add(tree, f.suite, c:take(1))
	local fr = c:take(1)
	local fs = false
	if fr then
		local ft = tree:add(f.flags, fr)
		ft:add(f.flag_fs, fr)
		fs = bit.band(fr:uint(), FLAG_FS) ~= 0
	end
	local id_i = add_str(c, tree, f.id_i)
	local id_r = add_str(c, tree, f.id_r)
	add(tree, f.n_i, c:take(32))
	add(tree, f.kvno_i, c:take(4))
	if fs then
		add(tree, f.e_i, c:take(32))
	end
	add(tree, f.auth_i, c:take(32))
	return fs, id_i, id_r
end

local function dissect_m1(c, tree, pinfo)
	local _, id_i, id_r = m1_fields(c, tree)
	if id_i and id_r then
		return string.format("%s -> %s", id_i, id_r)
	end
end

-- M2: m1 blob16 | n_r[32] | kvno_r u32 | [e_r[32]] | auth_r[32]
local function dissect_m2(c, tree, pinfo)
	local lr = c:take(2)
	if not lr then
		return
	end
	tree:add(f.m1_len, lr)
	local n = lr:uint()
	local m1r = c:take(n)
	if not m1r then
		return
	end
	local sub = tree:add(kd3, m1r, "M1 (verbatim, as the initiator sent it)")
	local inner = cursor(c.tvb, m1r:offset(), n)
	local fs, id_i, id_r = m1_fields(inner, sub)
	if not inner.ok or inner:left() ~= 0 then
		sub:add_proto_expert_info(ef.malformed, "M1 inside M2 does not parse")
	end
	add(tree, f.n_r, c:take(32))
	add(tree, f.kvno_r, c:take(4))
	if fs then
		add(tree, f.e_r, c:take(32))
	end
	add(tree, f.auth_r, c:take(32))
	if id_i and id_r then
		return string.format("%s -> %s", id_i, id_r)
	end
end

-- M3: n_r[32] | lifetime u32 | blob_r[48] | blob_i[48]
local function dissect_m3(c, tree)
	add(tree, f.n_r, c:take(32))
	local lt = add(tree, f.lifetime, c:take(4))
	add(tree, f.blob_r, c:take(48))
	add(tree, f.blob_i, c:take(48))
	if lt then
		return string.format("lifetime %u s", lt:uint())
	end
end

-- M4: n_r[32] | kvno_r u32 | [e_r[32]] | lifetime u32 | blob_i[48] | confirm_r[32]
-- e_r is there exactly when the body is 152 bytes (forward-secret mode).
local function dissect_m4(c, tree)
	local fs = c:left() == 152
	add(tree, f.n_r, c:take(32))
	add(tree, f.kvno_r, c:take(4))
	if fs then
		add(tree, f.e_r, c:take(32))
	end
	local lt = add(tree, f.lifetime, c:take(4))
	add(tree, f.blob_i, c:take(48))
	add(tree, f.confirm_r, c:take(32))
	return fs and "forward secrecy" or nil
end

-- ERROR: code u16 | text str
local function dissect_error(c, tree)
	local cr = c:take(2)
	if not cr then
		return
	end
	local item = tree:add(f.err_code, cr)
	local text = add_str(c, tree, f.err_text)
	local name = ERRORS[cr:uint()] or tostring(cr:uint())
	item:add_proto_expert_info(ef.error, "ERROR " .. name)
	return name .. (text and (": " .. text) or "")
end

-- RECORD: seq u64 | sealed (inner type u8 | payload | tag[16]): nothing inside is readable.
local function dissect_record(c, tree)
	local sr = c:take(8)
	if not sr then
		return
	end
	tree:add(f.seq, sr)
	local n = c:left()
	local sealed = c:take(n)
	if sealed then
		local st = tree:add(f.sealed, sealed)
		st:append_text(string.format(" [%d bytes: 1 inner type + %d payload + 16 tag]", n, n - 17))
		st:add_proto_expert_info(ef.encrypted, "Encrypted payload (AEAD); not decodable")
		tree:add(f.sealed_len, sealed, n):set_generated()
	end
	return string.format("seq %s, %d bytes sealed", tostring(sr:uint64()), n)
end

local BODY = {
	[0x01] = dissect_m1,
	[0x02] = dissect_m2,
	[0x03] = dissect_m3,
	[0x04] = dissect_m4,
	[0x10] = dissect_record,
	[0x7f] = dissect_error,
}

-- One whole frame at tvb(off): returns its length.
local function dissect_frame(tvb, pinfo, tree, off)
	local version = tvb(off, 1):uint()
	local ftype = tvb(off + 1, 1):uint()
	local blen = tvb(off + 2, 2):uint()
	local name = TYPES[ftype] or string.format("type 0x%02x", ftype)
	local total = HDR_LEN + blen
	local avail = tvb:len() - off
	local t = tree:add(kd3, tvb(off, math.min(total, avail)), "kd3 " .. name)
	t:add(f.version, tvb(off, 1))
	t:add(f.type, tvb(off + 1, 1))
	local lt = t:add(f.length, tvb(off + 2, 2))
	if version ~= 1 then
		t:add_proto_expert_info(ef.version, "kd3 version " .. version .. " (1 expected)")
	end
	if total > avail then
		lt:add_proto_expert_info(ef.malformed, "Body longer than the data")
		return avail, name
	end
	local summary = nil
	local fn = BODY[ftype]
	if not fn then
		t:add_proto_expert_info(ef.malformed, "Unknown frame type")
	elseif blen < BODY_MIN[ftype] or blen > BODY_MAX[ftype] then
		lt:add_proto_expert_info(ef.malformed, string.format("Body length %d out of range %d..%d for %s",
			blen, BODY_MIN[ftype], BODY_MAX[ftype], name))
	else
		local c = cursor(tvb, off + HDR_LEN, blen)
		summary = fn(c, t, pinfo)
		if not c.ok then
			t:add_proto_expert_info(ef.malformed, "Field runs past the end of the body")
		elseif c:left() ~= 0 then
			t:add_proto_expert_info(ef.malformed, string.format("%d trailing bytes", c:left()))
		end
	end
	if summary then
		t:append_text(": " .. summary)
		name = name .. " (" .. summary .. ")"
	end
	return total, name
end

local function set_info(pinfo, names)
	pinfo.cols.protocol = "kd3"
	pinfo.cols.info = table.concat(names, ", ")
end

-- UDP: one datagram is one frame (anything after it is marked).
local function dissect_datagram(tvb, pinfo, tree)
	if tvb:len() < HDR_LEN then
		local t = tree:add(kd3, tvb(), "kd3 (short datagram)")
		t:add_proto_expert_info(ef.malformed, "Shorter than a frame header")
		set_info(pinfo, { "short datagram" })
		return tvb:len()
	end
	local used, name = dissect_frame(tvb, pinfo, tree, 0)
	if used < tvb:len() then
		local t = tree:add(kd3, tvb(used), "trailing bytes")
		t:add_proto_expert_info(ef.malformed, "Bytes after the frame in one datagram")
	end
	set_info(pinfo, { name })
	return tvb:len()
end

-- TCP: frames are reassembled with dissect_tcp_pdus.
local function frame_len(tvb, pinfo, off)
	return HDR_LEN + tvb(off + 2, 2):uint()
end

local function dissect_pdu(tvb, pinfo, tree)
	local _, name = dissect_frame(tvb, pinfo, tree, 0)
	local prev = tostring(pinfo.cols.info)
	if pinfo.cols.protocol and tostring(pinfo.cols.protocol) == "kd3" and prev ~= "" then
		pinfo.cols.info = prev .. ", " .. name
	else
		set_info(pinfo, { name })
	end
	return tvb:len()
end

function kd3.dissector(tvb, pinfo, tree)
	if pinfo.port_type == 2 then -- TCP
		pinfo.cols.info = ""
		dissect_tcp_pdus(tvb, tree, HDR_LEN, frame_len, dissect_pdu, true)
		return tvb:len()
	end
	return dissect_datagram(tvb, pinfo, tree)
end

DissectorTable.get("tcp.port"):add(7089, kd3)
DissectorTable.get("tcp.port"):add(7088, kd3)
DissectorTable.get("udp.port"):add(7088, kd3)
