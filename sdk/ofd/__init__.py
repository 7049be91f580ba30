"""OFD documents (GB/T 33190-2016) sealed with electronic seals (GB/T 38540-2020, GM/T 0031-2014).

- :mod:`sdk.ofd.reader`: the package read with lxml (``read_ofd``), every part documented by clause;
- :mod:`sdk.ofd.ses`: the SES seal and signature structures, v4 and v1, with asn1crypto;
- :mod:`sdk.ofd.verify`: the full verification a bank relies on (``verify_ofd``).

Writing OFD is the sandbox's (``sandbox.ofd_writer``). Needs the ``regbridge[certificates,gm]``
extras (lxml, asn1crypto, gmssl-pyx, pyhanko-certvalidator); ``import sdk`` never imports this.
"""
