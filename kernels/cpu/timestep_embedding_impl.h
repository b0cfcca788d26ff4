/* Body of timestep_embedding.c, included for real = float and double. */

void FN(timestep_embedding_forward)(real *out, const real *t, int B, int dim) {
    int half = dim / 2;
    double step = log(10000.0) / (half - 1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            double a = (double)t[b] * exp(-i * step);
            out[(long)b * dim + i] = (real)sin(a);
            out[(long)b * dim + half + i] = (real)cos(a);
        }
}

void FN(timestep_embedding_backward)(real *dt, const real *dout, const real *t, int B, int dim) {
    int half = dim / 2;
    double step = log(10000.0) / (half - 1);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int i = 0; i < half; i++) {
            double f = exp(-i * step), a = (double)t[b] * f;
            s += f * (dout[(long)b * dim + i] * cos(a) - dout[(long)b * dim + half + i] * sin(a));
        }
        dt[b] += (real)s;
    }
}
