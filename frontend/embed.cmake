# embed.cmake: IN (a text file) as the C array NAME in OUT, NUL-terminated:
#   cmake -DIN=prelude.nn -DOUT=prelude.inc -DNAME=prelude_text -P embed.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by embed.cmake; do not edit */\n"
                  "static const char ${NAME}[] = {${bytes}0};\n")
