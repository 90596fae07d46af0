/* A character-level LSTM language model on the fortune cookie texts of
   Debian's fortunes package (/usr/share/games/fortunes/; apt-get install
   fortunes), or, without them, on nn.h's own source text.
   Embedding(V,64) -> LSTM(64, 256, 2 layers, dropout 0.1) -> Linear(256,V),
   Adam, truncated backpropagation through time (32 streams of 64 steps, the
   state carried from one window to the next).  After each epoch it prints the
   training loss and the bits per character on held-out text (the first 64 K
   characters of the last 10%, state carried too), beside the unigram baseline's bits per character on the same text,
   and samples text at temperature 0.8.
     cc -std=c99 -O3 -march=native -fopenmp -I. examples/char_lstm.c -o char_lstm -lm
     ./char_lstm [minutes, default 8] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 32       /* streams per batch */
#define T 64       /* steps per window */
#define E 64       /* embedding size */
#define HID 256
#define LAYERS 2

static const char *const files[] = {
    "art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs", "education",
    "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux",
    "linuxcookie", "literature", "love", "magic", "medicine", "men-women", "miscellaneous",
    "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics", "pratchett",
    "riddles", "science", "songs-poems", "sports", "startrek", "tao", "translate-me", "wisdom",
    "work", "zippy"};

/* Append the file at path to *buf. */
static void slurp(const char *path, unsigned char **buf, size_t *n, size_t *cap) {
    FILE *f = fopen(path, "rb");
    int c;
    if (!f) return;
    while ((c = fgetc(f)) != EOF) {
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 1 << 20;
            *buf = (unsigned char *)realloc(*buf, *cap);
        }
        (*buf)[(*n)++] = (unsigned char)c;
    }
    fclose(f);
}

typedef struct model {
    nn_module *root, *emb, *lstm, *head;
    nn_tensor *h, *c;   /* carried states [LAYERS, streams, HID], no gradient */
} model;

/* Logits [steps*streams, V] of a window x [steps, streams] (time-major
   indices), the states carried in m->h / m->c. */
static nn_tensor *run(model *m, const int *x, int steps, int streams) {
    nn_tensor *e = nn_embedding_lookup(m->emb, x, NN_SHAPE(steps, streams)), *hn, *cn, *y;
    y = nn_rnn_forward(m->lstm, e, m->h, m->c, NULL, &hn, &cn);
    memcpy(m->h->data, hn->data, hn->numel * sizeof(float));
    memcpy(m->c->data, cn->data, cn->numel * sizeof(float));
    return nn_forward(m->head, nn_reshape(y, NN_SHAPE(steps * streams, HID)));
}

int main(int argc, char **argv) {
    double minutes = argc > 1 ? atof(argv[1]) : 8.0, t_start;
    unsigned char *text = NULL, map[256];
    char chars[256];
    size_t n = 0, cap = 0, i, ntrain, nval, per;
    int V = 0, *ids, x[T * B], yl[T * B], epoch, k;
    double counts[256] = {0}, unigram = 0.0;
    char path[256];
    model m;
    nn_rnn_opts ro;
    nn_embedding_opts eo;
    nn_adam_opts ao;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_ce_opts ce;
    for (k = 0; k < (int)(sizeof files / sizeof files[0]); k++) {
        snprintf(path, sizeof path, "/usr/share/games/fortunes/%s", files[k]);
        slurp(path, &text, &n, &cap);
    }
    if (n < 100000) {
        printf("no fortunes (apt-get install fortunes): training on nn.h itself\n");
        n = 0;
        slurp("nn.h", &text, &n, &cap);
    }
    if (n < 10000) {
        printf("no text found (run from the repository root)\n");
        return 1;
    }
    memset(map, 0, sizeof map);
    for (i = 0; i < n; i++) map[text[i]] = 1;
    for (k = 0; k < 256; k++)
        if (map[k]) {
            chars[V] = (char)k;
            map[k] = (unsigned char)V++;
        }
    ids = (int *)malloc(n * sizeof(int));
    for (i = 0; i < n; i++) ids[i] = map[text[i]];
    ntrain = n / 10 * 9;
    nval = n - ntrain;
    if (nval > 65536) nval = 65536; /* (the first 64 K of the held-out 10%) */
    /* the unigram baseline: training frequencies (add-one), scored on held-out text */
    for (i = 0; i < ntrain; i++) counts[ids[i]] += 1.0;
    for (i = ntrain; i < ntrain + nval; i++) unigram -= log2((counts[ids[i]] + 1.0) / ((double)ntrain + V));
    unigram /= (double)nval;
    printf("%zu characters (%d distinct), %zu for training, %zu held out; unigram baseline "
           "%.3f bits/char\n", n, V, ntrain, nval, unigram);

    nn_seed(7);
    memset(&ro, 0, sizeof ro);
    memset(&eo, 0, sizeof eo);
    memset(&ao, 0, sizeof ao);
    memset(&ce, 0, sizeof ce);
    ro.num_layers = LAYERS;
    ro.dropout = 0.1f;
    m.root = nn_module_new("CharLSTM", NULL);
    m.emb = nn_module_add_child(m.root, "embed", nn_embedding(V, E, eo));
    m.lstm = nn_module_add_child(m.root, "lstm", nn_lstm(E, HID, ro));
    m.head = nn_module_add_child(m.root, "head", nn_linear(HID, V));
    m.h = nn_zeros(NULL, NN_SHAPE(LAYERS, B, HID));
    m.c = nn_zeros(NULL, NN_SHAPE(LAYERS, B, HID));
    ao.lr = 2e-3f;
    opt = nn_adam(m.root, ao);
    per = (ntrain - 1) / B; /* each stream reads its own contiguous part */
    t_start = nn_time();
    for (epoch = 1;; epoch++) {
        size_t pos, steps = 0;
        double loss_sum = 0.0, bits = 0.0, t_epoch = nn_time();
        size_t counted = 0;
        nn_train_mode(m.root, 1);
        memset(m.h->data, 0, m.h->numel * sizeof(float));
        memset(m.c->data, 0, m.c->numel * sizeof(float));
        /* an epoch: 1/4 of the training text, so the held-out score comes often */
        for (pos = (size_t)(epoch - 1) % 4 * (per / 4); pos + T < (size_t)((epoch - 1) % 4 + 1) * (per / 4); pos += T) {
            int t, b;
            nn_tensor *loss;
            for (t = 0; t < T; t++)
                for (b = 0; b < B; b++) {
                    x[t * B + b] = ids[(size_t)b * per + pos + (size_t)t];
                    yl[t * B + b] = ids[(size_t)b * per + pos + (size_t)t + 1];
                }
            nn_graph_reset(g);
            loss = nn_cross_entropy(run(&m, x, T, B), yl, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_clip_grad_norm(opt, 1.0f);
            nn_step(opt);
            loss_sum += nn_item(loss);
            steps++;
            if ((nn_time() - t_start) / 60.0 > minutes) break;
        }
        /* held-out bits per character: 32 streams over the held-out text */
        nn_train_mode(m.root, 0);
        nn_set_grad_enabled(g, 0);
        memset(m.h->data, 0, m.h->numel * sizeof(float));
        memset(m.c->data, 0, m.c->numel * sizeof(float));
        {
            size_t vper = (nval - 1) / B, vp;
            ce.reduction = NN_REDUCE_SUM;
            for (vp = 0; vp + T < vper; vp += T) {
                int t, b;
                for (t = 0; t < T; t++)
                    for (b = 0; b < B; b++) {
                        x[t * B + b] = ids[ntrain + (size_t)b * vper + vp + (size_t)t];
                        yl[t * B + b] = ids[ntrain + (size_t)b * vper + vp + (size_t)t + 1];
                    }
                nn_graph_reset(g);
                bits += nn_item(nn_cross_entropy(run(&m, x, T, B), yl, ce)) / log(2.0);
                counted += (size_t)T * B;
            }
            ce.reduction = NN_REDUCE_MEAN;
        }
        printf("epoch %d: %zu steps in %.0f s, train loss %.3f nats, held-out %.3f bits/char "
               "(unigram %.3f)\n", epoch, steps, nn_time() - t_epoch, loss_sum / (double)(steps ? steps : 1),
               bits / (double)counted, unigram);
        /* a sample at temperature 0.8, one stream */
        {
            nn_tensor *h1 = nn_zeros(NULL, NN_SHAPE(LAYERS, 1, HID)), *c1 = nn_zeros(NULL, NN_SHAPE(LAYERS, 1, HID));
            nn_tensor *hk = m.h, *ck = m.c;
            int cur = map['\n'], s;
            m.h = h1;
            m.c = c1;
            printf("  sample: ");
            for (s = 0; s < 240; s++) {
                nn_tensor *lo;
                float p[256], sum = 0.0f, u, mx;
                int v;
                nn_graph_reset(g);
                lo = run(&m, &cur, 1, 1);
                for (v = 1, mx = lo->data[0]; v < V; v++) mx = lo->data[v] > mx ? lo->data[v] : mx;
                for (v = 0; v < V; v++) sum += (p[v] = expf((lo->data[v] - mx) / 0.8f));
                u = nn_rand_uniform() * sum;
                for (v = 0; v < V - 1 && (u -= p[v]) > 0.0f; v++) {}
                cur = v;
                putchar(chars[v] == '\n' ? '/' : chars[v]);
            }
            putchar('\n');
            fflush(stdout);
            m.h = hk;
            m.c = ck;
            nn_tensor_free(h1);
            nn_tensor_free(c1);
        }
        nn_set_grad_enabled(g, 1);
        if ((nn_time() - t_start) / 60.0 > minutes) break;
    }
    nn_optim_free(opt);
    nn_module_free(m.root);
    nn_tensor_free(m.h);
    nn_tensor_free(m.c);
    nn_graph_free(g);
    free(ids);
    free(text);
    return 0;
}
