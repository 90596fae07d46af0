/* ===== >>layers ========================================================== */
/* Convolution, pooling, batch norm and the activations CNNs use.  Tensors are
   NCHW ([N,C,H,W]) for 2-D layers and NCL ([N,C,L]) for 1-D layers; in the
   shape comments OH = (H + 2P - D(K-1) - 1)/S + 1 (rounded down). */

/* Options of the convolutions; zero means the default in every field. */
typedef struct nn_conv_opts {
    int kernel;          /* kernel size K (square), required by the modules */
    int stride;          /* S, 0 means 1 */
    int padding;         /* P zeros on every side, 0 means none */
    int dilation;        /* D, spacing of the kernel taps, 0 means 1 */
    int groups;          /* G, 0 means 1; groups == in_ch is depthwise */
    int no_bias;         /* 1: no bias (PyTorch bias=False); a bias by default */
    int output_padding;  /* conv_transpose only: extra rows/cols at the end */
} nn_conv_opts;

/* 2-D convolution (F.conv2d): x [N,C,H,W], w [OC,C/G,K,K], b [OC] or NULL ->
   [N,OC,OH,OW].  K comes from w (opts.kernel, if set, must agree). */
NNDEF nn_tensor *nn_conv2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts);
/* 1-D convolution (F.conv1d): x [N,C,L], w [OC,C/G,K], b [OC] or NULL ->
   [N,OC,OL] with OL = (L + 2P - D(K-1) - 1)/S + 1. */
NNDEF nn_tensor *nn_conv1d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts);
/* Transposed 2-D convolution (F.conv_transpose2d), the gradient of conv2d
   with respect to its input: x [N,C,H,W], w [C,OC/G,K,K], b [OC] or NULL ->
   [N,OC,OH,OW] with OH = (H-1)S - 2P + D(K-1) + output_padding + 1. */
NNDEF nn_tensor *nn_conv_transpose2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b,
                                        nn_conv_opts opts);

/* Conv2d module (torch.nn.Conv2d): parameters "weight" [out_ch,in_ch/G,K,K]
   and "bias" [out_ch], both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
   fan_in = in_ch/G*K*K (PyTorch's default init). */
NNDEF nn_module *nn_conv2d(int in_ch, int out_ch, nn_conv_opts opts);
/* Conv1d module (torch.nn.Conv1d): "weight" [out_ch,in_ch/G,K], "bias"
   [out_ch], initialized like nn_conv2d with fan_in = in_ch/G*K. */
NNDEF nn_module *nn_conv1d(int in_ch, int out_ch, nn_conv_opts opts);
/* ConvTranspose2d module (torch.nn.ConvTranspose2d): "weight"
   [in_ch,out_ch/G,K,K], "bias" [out_ch], U(+-1/sqrt(fan_in)) with
   fan_in = out_ch/G*K*K as PyTorch computes it for this layer. */
NNDEF nn_module *nn_conv_transpose2d(int in_ch, int out_ch, nn_conv_opts opts);

/* Options of the pooling layers; zero means the default. */
typedef struct nn_pool_opts {
    int kernel;          /* window size K (square), required */
    int stride;          /* 0 means kernel */
    int padding;         /* at most kernel/2; max pooling pads with -inf,
                            average pooling with zeros that count in the
                            divisor (count_include_pad=True) */
} nn_pool_opts;

/* Max over K x K windows (F.max_pool2d): [N,C,H,W] -> [N,C,OH,OW].  The
   gradient goes to the first maximal element of each window. */
NNDEF nn_tensor *nn_maxpool2d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over K x K windows, divisor K*K (F.avg_pool2d): [N,C,H,W] -> [N,C,OH,OW]. */
NNDEF nn_tensor *nn_avgpool2d_op(nn_tensor *x, nn_pool_opts opts);
/* Max over windows of K along L (F.max_pool1d): [N,C,L] -> [N,C,OL]. */
NNDEF nn_tensor *nn_maxpool1d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over windows of K along L (F.avg_pool1d): [N,C,L] -> [N,C,OL]. */
NNDEF nn_tensor *nn_avgpool1d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over all positions of each channel (AdaptiveAvgPool2d(1)):
   [N,C,H,W] -> [N,C,1,1], [N,C,L] -> [N,C,1]. */
NNDEF nn_tensor *nn_global_avgpool_op(nn_tensor *x);
/* Nearest-neighbour upsampling by an integer factor (F.interpolate(
   scale_factor=s, mode="nearest")): [N,C,H,W] -> [N,C,sH,sW]. */
NNDEF nn_tensor *nn_upsample_nearest2d_op(nn_tensor *x, int scale);

/* Pooling modules (torch.nn.MaxPool2d, AvgPool2d, MaxPool1d, AvgPool1d,
   AdaptiveAvgPool2d(1), Upsample(scale_factor=s)); no parameters. */
NNDEF nn_module *nn_maxpool2d(nn_pool_opts opts);
NNDEF nn_module *nn_avgpool2d(nn_pool_opts opts);
NNDEF nn_module *nn_maxpool1d(nn_pool_opts opts);
NNDEF nn_module *nn_avgpool1d(nn_pool_opts opts);
NNDEF nn_module *nn_global_avgpool(void);
NNDEF nn_module *nn_upsample_nearest2d(int scale);

/* Batch normalization (F.batch_norm) of x [N,C], [N,C,L] or [N,C,H,W] per
   channel: y = (x - mean) / sqrt(var + eps) * weight + bias.  Training: batch
   mean and biased variance, and running_mean/var (persistent [C] tensors, or
   NULL) move by momentum towards the batch mean and the unbiased variance.
   Evaluation: the running statistics.  weight and bias [C] may be NULL. */
NNDEF nn_tensor *nn_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                  nn_tensor *running_var, nn_tensor *weight,
                                  nn_tensor *bias, int training, float momentum, float eps);
/* BatchNorm1d over [N,features] or [N,features,L] (torch.nn.BatchNorm1d):
   parameters "weight" (ones) and "bias" (zeros), buffers "running_mean",
   "running_var" and "num_batches_tracked"; momentum 0.1 and eps 1e-5 live in
   m->fopt[0] and m->fopt[1]. */
NNDEF nn_module *nn_batchnorm1d(int features);
/* BatchNorm2d over [N,channels,H,W] (torch.nn.BatchNorm2d), as nn_batchnorm1d. */
NNDEF nn_module *nn_batchnorm2d(int channels);

/* x > 0 ? x : slope x (F.leaky_relu). */
NNDEF nn_tensor *nn_leaky_relu_op(nn_tensor *x, float slope);
/* x > 0 ? x : alpha (e^x - 1) (F.elu). */
NNDEF nn_tensor *nn_elu_op(nn_tensor *x, float alpha);
/* x/2 (1 + erf(x/sqrt 2)), the exact GELU (F.gelu, approximate="none"). */
NNDEF nn_tensor *nn_gelu_op(nn_tensor *x);
/* x sigmoid(x), a.k.a. swish (F.silu). */
NNDEF nn_tensor *nn_silu_op(nn_tensor *x);
/* Activation modules: LeakyReLU (slope 0 means 0.01), ELU (alpha 0 means 1),
   GELU and SiLU. */
NNDEF nn_module *nn_leaky_relu(float slope);
NNDEF nn_module *nn_elu(float alpha);
NNDEF nn_module *nn_gelu(void);
NNDEF nn_module *nn_silu(void);
