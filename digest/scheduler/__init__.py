"""The scheduler behind ``digest run``: what is due (``plan``), one tick (``tick``), the loop and
its lock (``runner``) and ``digest status`` (``status``)."""
