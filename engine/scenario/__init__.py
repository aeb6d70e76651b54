"""Scenarios: what a parsed scenario is (model), the one safe file reader (reader), and the
parser that turns TOML into the model (parse).

Importing the model, the reader or even the parser loads no emulator, assembler or
disassembler: Keystone and Capstone load when user code is assembled (a test proves it in a
fresh interpreter).
"""
