/**
 * A message as it can reach a user through kubelet. Kubelet 1.20 passes a volume plugin's error
 * text as the *format string* of the pod's FailedMount event (operation_generator.go:
 * `recorder.Eventf(pod, …, FailedMountVolume, err.Error())`), so "needs 250% of the device"
 * reached `kubectl describe pod` as "needs 250%!o(MISSING)f the device" (met in test:kube).
 * Escaping as "%%" would show doubled wherever the text is not a format; "percent" reads the same
 * everywhere.
 */
export function forKubelet(text: string): string {
  return text.replace(/%/g, ' percent');
}
