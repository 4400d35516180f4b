/* lexer.h: model source text to tokens.
 *
 * Owns the token kinds and the rules of the lexical grammar: numbers,
 * identifiers, keywords, strings, comments and where a line ends. Knows
 * nothing of statements or expressions. Every token carries its location; a
 * bad character or literal is a diagnostic and lexing goes on.
 */
#ifndef GRADC_LEXER_H
#define GRADC_LEXER_H

#include "../ir/base.h"

/* Columns of X(ID, text):
 *   ID    enumerator suffix: TK_ID
 *   text  how a diagnostic names the kind ("expected ']'"); for keywords and
 *         punctuation it is also the spelling, between the quotes */
#define TOKEN_KINDS(X)                                                         \
    X(EOF, "end of file")                                                      \
    X(NEWLINE, "end of line")                                                  \
    X(IDENT, "identifier")                                                     \
    X(NUMBER, "number")                                                        \
    X(STRING, "string")                                                        \
    X(LPAREN, "'('")                                                           \
    X(RPAREN, "')'")                                                           \
    X(LBRACKET, "'['")                                                         \
    X(RBRACKET, "']'")                                                         \
    X(LBRACE, "'{'")                                                           \
    X(RBRACE, "'}'")                                                           \
    X(COMMA, "','")                                                            \
    X(COLON, "':'")                                                            \
    X(ASSIGN, "'='")                                                           \
    X(TILDE, "'~'")                                                            \
    X(PLUS, "'+'")                                                             \
    X(MINUS, "'-'")                                                            \
    X(STAR, "'*'")                                                             \
    X(SLASH, "'/'")                                                            \
    X(AT, "'@'")                                                               \
    X(CARET, "'^'")                                                            \
    X(CONST, "'const'")                                                        \
    X(INPUT, "'input'")                                                        \
    X(PARAM, "'param'")                                                        \
    X(OUTPUT, "'output'")                                                      \
    X(TRAIN, "'train'")                                                        \
    X(FN, "'fn'")                                                              \
    X(RETURN, "'return'")                                                      \
    X(TRUE, "'true'")                                                          \
    X(FALSE, "'false'")

typedef enum TokenKind {
#define X(id, text) TK_##id,
    TOKEN_KINDS(X)
#undef X
} TokenKind;

typedef struct Token {
    TokenKind kind;
    Loc loc;          /* the token's span; NEWLINE and EOF: the point after
                         the last token of the line */
    const char *text; /* the token's bytes in the source (not terminated) */
    int len;
    bool at_bol;      /* first token on its source line */
    double num;       /* NUMBER: its value */
    const char *str;  /* STRING: the value, escapes decoded; IDENT: the name */
} Token;

typedef Vec(Token) TokenVec;

/* The tokens of f, ending with one TK_EOF. A NEWLINE ends each non-empty
 * line, the last one too, except inside ( ) and [ ], where a statement may
 * continue on the next line (so a ( left open swallows every later line
 * break; at_bol still marks where lines begin). Blank and comment-only lines
 * give none. Bad characters and literals are reported to d and skipped. */
TokenVec lex_file(Arena *a, Diags *d, const SrcFile *f);

/* How diagnostics name a kind: "identifier", "']'". */
const char *lex_kind_name(TokenKind k);
/* How diagnostics name a token that was found: "'foo'", "'1e-3'",
 * "string \"abc\"", "end of line". */
char *lex_describe(Arena *a, const Token *t);

#endif
