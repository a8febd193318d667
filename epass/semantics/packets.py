"""A default input packet for runs that are not given one."""

from __future__ import annotations

import struct


def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def sample_packet() -> bytes:
    """74 bytes: Ethernet, IPv4 10.0.0.1 -> 10.0.0.2 (ttl 64, valid checksum), UDP 1234 -> 53."""
    payload = b"epass sample packet payload 0123"
    udp = struct.pack("!HHHH", 1234, 53, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                               bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))))
    ip[10:12] = struct.pack("!H", ipv4_checksum(bytes(ip)))
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    return eth + bytes(ip) + udp
