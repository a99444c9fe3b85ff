/**
 * The gb-devices baseline: a bare UDP server that answers every SIP request `200 OK` with the request's own
 * Via, From, To, Call-ID and CSeq and nothing else (no parser, no transaction state, no store) — the least
 * a SIP server must spend per keepalive. Prints {port, pid}.
 */
import { createSocket } from 'node:dgram';

/** Header lines a response must echo (RFC 3261 §8.2.6.2), long and compact forms. */
const ECHOED = /^(via|v|from|f|to|t|call-id|i|cseq):/i;

const socket = createSocket('udp4');
socket.on('message', (datagram, from) => {
  const text = datagram.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  if (lines[0]?.startsWith('SIP/2.0')) return; // a response: nothing to answer
  const echoed = lines.slice(1).filter((line) => ECHOED.test(line));
  socket.send(`SIP/2.0 200 OK\r\n${echoed.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`, from.port, from.address);
});
socket.bind(0, '127.0.0.1', () => console.log(JSON.stringify({ port: socket.address().port, pid: process.pid })));
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
