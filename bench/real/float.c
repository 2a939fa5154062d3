/* Soft-float and libm over doubles: a small n-body simulation (sqrt), a table of sin/exp/log
   values summed with Kahan summation, and a Newton iteration; checks energy drift and prints
   the results with printf("%f"). */
#include <stdio.h>
#include <math.h>

#ifndef SCALE
#define SCALE 1
#endif

#define N 5
struct body { double x, y, z, vx, vy, vz, m; };
static struct body bodies[N] = {
  { 0, 0, 0, 0, 0, 0, 39.47841760435743 },
  { 4.84, -1.16, -0.10, 0.606, 2.81, -0.025, 0.037 },
  { 8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011 },
  { 12.89, -15.11, -0.22, 1.08, 0.868, -0.010, 0.0017 },
  { 15.37, -25.91, 0.17, 0.979, 0.594, -0.034, 0.0020 },
};

static double energy(void) {
  double e = 0;
  for (int i = 0; i < N; i++) {
    struct body *b = &bodies[i];
    e += 0.5 * b->m * (b->vx * b->vx + b->vy * b->vy + b->vz * b->vz);
    for (int j = i + 1; j < N; j++) {
      double dx = b->x - bodies[j].x, dy = b->y - bodies[j].y, dz = b->z - bodies[j].z;
      e -= b->m * bodies[j].m / sqrt(dx * dx + dy * dy + dz * dz);
    }
  }
  return e;
}

static void advance(double dt) {
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) {
      double dx = bodies[i].x - bodies[j].x, dy = bodies[i].y - bodies[j].y, dz = bodies[i].z - bodies[j].z;
      double d2 = dx * dx + dy * dy + dz * dz, mag = dt / (d2 * sqrt(d2));
      bodies[i].vx -= dx * bodies[j].m * mag; bodies[i].vy -= dy * bodies[j].m * mag; bodies[i].vz -= dz * bodies[j].m * mag;
      bodies[j].vx += dx * bodies[i].m * mag; bodies[j].vy += dy * bodies[i].m * mag; bodies[j].vz += dz * bodies[i].m * mag;
    }
  for (int i = 0; i < N; i++) { bodies[i].x += dt * bodies[i].vx; bodies[i].y += dt * bodies[i].vy; bodies[i].z += dt * bodies[i].vz; }
}

int main(void) {
  double e0 = energy();
  for (int s = 0; s < 40 * SCALE; s++) advance(0.001);
  double e1 = energy();
  double sum = 0, c = 0;
  for (int i = 0; i < 80 * SCALE; i++) {
    double t = i * 0.001;
    double y = sin(t) * exp(-t * 0.1) + log(1.0 + t) - c;
    double u = sum + y;
    c = (u - sum) - y;
    sum = u;
  }
  double r = 2.0;
  for (int i = 0; i < 40; i++) r = r - (r * r * r - 10.0) / (3 * r * r);
  printf("float: energy %.9f -> %.9f, series %.6f, cbrt(10) %.12f\n", e0, e1, sum, r);
  if (fabs(e1 - e0) > 1e-3 * fabs(e0) || fabs(r * r * r - 10.0) > 1e-9) { printf("float: check failed\n"); return 1; }
  return 0;
}
