"""Synthetic twins of the four datasets: videos of coloured shapes whose captions can be learnt from pixels.

:mod:`~centerclip.data.synthetic.render` draws and encodes the videos, :mod:`~centerclip.data.synthetic.captions`
words what they show, and :mod:`~centerclip.data.synthetic.twins` writes each dataset's twin in its real layout.
"""
