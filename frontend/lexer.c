/* lexer.c: source text to tokens. See lexer.h.
 *
 * Owns the lexical grammar:
 *   ident   = part ("." part)*                (keywords are reserved idents)
 *   part    = [A-Za-z_][A-Za-z0-9_]*          ("h.W", "block1.h.b": no spaces)
 *   number  = digit+ ("." digit*)? ([eE] [+-]? digit+)?
 *   string  = '"' (char | '\"' | '\\' | '\n' | '\t')* '"'    (one line)
 *   comment = '#' to the end of the line
 * Must not look at statements: the only context it keeps is the depth of
 * open ( and [, inside which a line break is not a NEWLINE.
 */
#include "lexer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
#define X(id, text) text,
    TOKEN_KINDS(X)
#undef X
};

static const struct {
    const char *word;
    TokenKind kind;
} keywords[] = {
    {"const", TK_CONST}, {"input", TK_INPUT}, {"param", TK_PARAM},
    {"output", TK_OUTPUT}, {"train", TK_TRAIN}, {"true", TK_TRUE},
    {"false", TK_FALSE}, {"fn", TK_FN}, {"return", TK_RETURN},
};

typedef struct Lexer {
    Arena *a;
    Diags *d;
    const SrcFile *f;
    const char *p, *end;
    const char *line_start;
    int line;
    int depth;   /* open ( and [ */
    bool at_bol; /* no token yet on this line */
    Loc after;   /* the point just after the last token */
    TokenVec toks;
} Lexer;

const char *lex_kind_name(TokenKind k) { return kind_names[k]; }

char *lex_describe(Arena *a, const Token *t) {
    enum { MAX_SHOWN = 32 };
    switch (t->kind) {
    case TK_EOF:
    case TK_NEWLINE:
        return arena_strdup(a, kind_names[t->kind]);
    case TK_STRING:
        if (t->len > MAX_SHOWN)
            return arena_printf(a, "string %.*s...", MAX_SHOWN, t->text);
        return arena_printf(a, "string %.*s", t->len, t->text);
    case TK_IDENT:
    case TK_NUMBER:
    case TK_LPAREN:
    case TK_RPAREN:
    case TK_LBRACKET:
    case TK_RBRACKET:
    case TK_LBRACE:
    case TK_RBRACE:
    case TK_COMMA:
    case TK_COLON:
    case TK_ASSIGN:
    case TK_TILDE:
    case TK_PLUS:
    case TK_MINUS:
    case TK_STAR:
    case TK_SLASH:
    case TK_AT:
    case TK_CARET:
    case TK_CONST:
    case TK_INPUT:
    case TK_PARAM:
    case TK_OUTPUT:
    case TK_TRAIN:
    case TK_FN:
    case TK_RETURN:
    case TK_TRUE:
    case TK_FALSE:
        if (t->len > MAX_SHOWN)
            return arena_printf(a, "'%.*s...'", MAX_SHOWN, t->text);
        return arena_printf(a, "'%.*s'", t->len, t->text);
    }
    gc_unreachable();
}

static Loc loc_at(const Lexer *L, const char *p, int len) {
    return (Loc){L->f, L->line, (int)(p - L->line_start) + 1, len};
}

static Token *push(Lexer *L, TokenKind kind, const char *start, int len) {
    Token t = {.kind = kind, .loc = loc_at(L, start, len), .text = start, .len = len,
               .at_bol = L->at_bol};
    vec_push(L->a, &L->toks, t);
    L->at_bol = false;
    L->after = loc_at(L, start + len, 0);
    return &L->toks.items[L->toks.len - 1];
}

/* A line break: a NEWLINE token unless inside ( ) or [ ], or the line had
 * no tokens. */
static void end_line(Lexer *L) {
    if (L->depth == 0 && L->toks.len > 0 &&
        L->toks.items[L->toks.len - 1].kind != TK_NEWLINE) {
        Token t = {.kind = TK_NEWLINE, .loc = L->after, .text = "\n", .len = 0};
        vec_push(L->a, &L->toks, t);
    }
    L->line++;
    L->line_start = L->p;
    L->at_bol = true;
}

/* Longest name and number: longer ones are errors (a generated or
 * corrupt file), and a message shows only their first SHOWN bytes. */
enum { LEX_MAX_NAME = 256, LEX_MAX_NUMBER = 256, SHOWN = 32 };

/* The first SHOWN bytes of t's text, "..." after them when cut. */
static char *shown(Lexer *L, const Token *t) {
    if (t->len <= SHOWN)
        return arena_strndup(L->a, t->text, (size_t)t->len);
    return arena_printf(L->a, "%.*s...", SHOWN, t->text);
}

static bool is_ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

static bool is_ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }

/* An identifier or keyword, dotted names included. Every '.' run into the
 * name is taken with it, so a misplaced one ("a.", "a..b", "a.5") is one
 * error over the whole name, which still becomes an IDENT. */
static void lex_ident(Lexer *L) {
    const char *start = L->p;
    while (L->p < L->end && (is_ident_char(*L->p) || *L->p == '.'))
        L->p++;
    int len = (int)(L->p - start);
    TokenKind kind = TK_IDENT;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if ((int)strlen(keywords[i].word) == len && !memcmp(keywords[i].word, start, (size_t)len))
            kind = keywords[i].kind;
    Token *t = push(L, kind, start, len);
    t->str = arena_strndup(L->a, start, (size_t)len);
    if (len > LEX_MAX_NAME) {
        diag_error(L->d, t->loc, "name '%s' is too long (%d characters; at most %d)",
                   shown(L, t), len, LEX_MAX_NAME);
        return;
    }
    for (const char *p = start; p < L->p; p++) {
        if (*p != '.' || (p + 1 < L->p && is_ident_start(p[1])))
            continue;
        if (p + 1 == L->p)
            diag_error(L->d, t->loc, "invalid name '%s': a name cannot end with '.'", t->str);
        else if (p[1] == '.')
            diag_error(L->d, t->loc, "invalid name '%s': two '.' in a row", t->str);
        else
            diag_error(L->d, t->loc,
                       "invalid name '%s': a '.' in a name must be followed by a letter or '_'",
                       t->str);
        break;
    }
}

static bool digit_at(const Lexer *L, const char *p) {
    return p < L->end && isdigit((unsigned char)*p);
}

static void lex_number(Lexer *L) {
    const char *start = L->p, *p = L->p;
    while (digit_at(L, p))
        p++;
    if (p < L->end && *p == '.') {
        p++;
        while (digit_at(L, p))
            p++;
    }
    if (p < L->end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < L->end && (*q == '+' || *q == '-'))
            q++;
        if (digit_at(L, q)) {
            p = q;
            while (digit_at(L, p))
                p++;
        }
    }
    const char *valid_end = p;
    while (p < L->end && (is_ident_char(*p) || *p == '.'))
        p++;
    L->p = p;
    Token *t = push(L, TK_NUMBER, start, (int)(p - start));
    if (t->len > LEX_MAX_NUMBER) {
        diag_error(L->d, t->loc, "number '%s' is too long (%d characters; at most %d)",
                   shown(L, t), t->len, LEX_MAX_NUMBER);
        return;
    }
    char *digits = arena_strndup(L->a, start, (size_t)(valid_end - start));
    t->num = strtod(digits, NULL);
    if (p != valid_end)
        diag_error(L->d, t->loc, "invalid number '%s'", shown(L, t));
    else if (!isfinite(t->num))
        diag_error(L->d, t->loc, "number '%s' is too large", shown(L, t));
}

static void lex_string(Lexer *L) {
    const char *start = L->p++;
    char *buf = arena_alloc(L->a, (size_t)(L->end - start) + 1);
    size_t n = 0;
    bool closed = false;
    while (L->p < L->end && *L->p != '\n') {
        char c = *L->p++;
        if (c == '"') {
            closed = true;
            break;
        }
        if (c == '\\' && L->p < L->end && *L->p != '\n') {
            char e = *L->p++;
            switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            default:
                if (isprint((unsigned char)e))
                    diag_error(L->d, loc_at(L, L->p - 2, 2),
                               "unknown escape sequence '\\%c' in string", e);
                else
                    diag_error(L->d, loc_at(L, L->p - 2, 2),
                               "unknown escape sequence '\\x%02x' in string", (unsigned char)e);
                c = e;
            }
        }
        buf[n++] = c;
    }
    buf[n] = 0;
    int len = (int)(L->p - start);
    if (!closed) {
        while (len > 1 && (start[len - 1] == '\r'))
            len--;
    }
    Token *t = push(L, TK_STRING, start, len);
    t->str = buf;
    if (!closed)
        diag_error(L->d, t->loc, "unterminated string");
}

static void bad_char(Lexer *L) {
    const char *start = L->p++;
    unsigned char c = (unsigned char)*start;
    if (c >= 0x80) { /* one UTF-8 sequence: the lead byte and its continuations */
        while (L->p < L->end && ((unsigned char)*L->p & 0xC0) == 0x80)
            L->p++;
        int len = (int)(L->p - start);
        diag_error(L->d, loc_at(L, start, len), "unexpected character '%.*s'", len, start);
    } else if (isprint(c)) {
        diag_error(L->d, loc_at(L, start, 1), "unexpected character '%c'", c);
    } else {
        diag_error(L->d, loc_at(L, start, 1), "unexpected character '\\x%02x'", c);
    }
}

static TokenKind punct_kind(char c) {
    switch (c) {
    case '(': return TK_LPAREN;
    case ')': return TK_RPAREN;
    case '[': return TK_LBRACKET;
    case ']': return TK_RBRACKET;
    case '{': return TK_LBRACE;
    case '}': return TK_RBRACE;
    case ',': return TK_COMMA;
    case ':': return TK_COLON;
    case '=': return TK_ASSIGN;
    case '~': return TK_TILDE;
    case '+': return TK_PLUS;
    case '-': return TK_MINUS;
    case '*': return TK_STAR;
    case '/': return TK_SLASH;
    case '@': return TK_AT;
    case '^': return TK_CARET;
    default: return TK_EOF; /* not punctuation */
    }
}

TokenVec lex_file(Arena *a, Diags *d, const SrcFile *f) {
    Lexer L = {.a = a, .d = d, .f = f, .p = f->text, .end = f->text + f->len,
               .line_start = f->text, .line = 1, .at_bol = true};
    L.after = (Loc){f, 1, 1, 0};
    while (L.p < L.end) {
        char c = *L.p;
        if (c == '\n') {
            L.p++;
            end_line(&L);
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            L.p++;
        } else if (c == '#') {
            while (L.p < L.end && *L.p != '\n')
                L.p++;
        } else if (is_ident_start(c)) {
            lex_ident(&L);
        } else if (isdigit((unsigned char)c)) {
            lex_number(&L);
        } else if (c == '"') {
            lex_string(&L);
        } else {
            TokenKind k = punct_kind(c);
            if (k == TK_EOF) {
                bad_char(&L);
                continue;
            }
            if (k == TK_LPAREN || k == TK_LBRACKET)
                L.depth++;
            else if ((k == TK_RPAREN || k == TK_RBRACKET) && L.depth > 0)
                L.depth--;
            push(&L, k, L.p++, 1);
        }
    }
    if (L.depth == 0)
        end_line(&L); /* the last line needs no line break to end */
    Token eof = {.kind = TK_EOF, .loc = L.after, .text = "", .len = 0, .at_bol = L.at_bol};
    vec_push(a, &L.toks, eof);
    return L.toks;
}
