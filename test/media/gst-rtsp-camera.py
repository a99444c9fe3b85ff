#!/usr/bin/python3
"""An independent RTSP camera for tests: GStreamer's RTSP server (gst-rtsp-server), not our code.

usage: gst-rtsp-camera.py PORT   serves rtsp://127.0.0.1:PORT/h264 and /h265 (640x360, 25 fps, a keyframe
a second, AAC audio), TCP and UDP transports alike. Prints "ready" once listening; runs until killed.
"""
import sys

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = 'videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 ! videoconvert'
AUDIO = 'audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! voaacenc bitrate=64000 ! rtpmp4gpay name=pay1 pt=97'
ENCODERS = {
    'h264': 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=500 ! rtph264pay name=pay0 pt=96 config-interval=-1',
    'h265': 'x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=500 ! rtph265pay name=pay0 pt=96 config-interval=-1',
}


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(sys.argv[1])
    mounts = server.get_mount_points()
    for codec, encoder in ENCODERS.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f'( {VIDEO} ! {encoder} {AUDIO} )')
        factory.set_shared(True)
        mounts.add_factory(f'/{codec}', factory)
    if server.attach(None) == 0:
        sys.exit('could not listen')
    print('ready', flush=True)
    GLib.MainLoop().run()


main()
