/**
 * Temperature scaling (Guo et al. 2017): the temperature T fitted by minimising the negative log-likelihood of the
 * labels under sigmoid(logit / T) on held-out (validation) logits, at image level or at study level (the study
 * probability is the mean of its images'), the choice between the two, and applying it. Pure arithmetic
 * (browser-safe).
 */
import { calibration, logitNll, logLoss, minimiseOverLogT, sigmoid, studyProbabilities } from '../evaluate/calibration.js';

/** Mean negative log-likelihood of labels under sigmoid(z / T) (numerically stable softplus form). */
export function temperatureNll(logits: ArrayLike<number>, y: ArrayLike<number>, t: number): number {
  return logitNll(logits, y, t);
}

export interface TemperatureFit {
  temperature: number;
  nllBefore: number;
  nllAfter: number;
  n: number;
}

/**
 * The temperature T in [0.05, 20] minimising the NLL of sigmoid(logit / T): golden-section search on log T (the NLL
 * is unimodal in 1/T: convex in the scale of the logit).
 */
export function fitTemperature(logits: ArrayLike<number>, y: ArrayLike<number>): TemperatureFit {
  if (logits.length !== y.length || logits.length === 0) throw new RangeError(`fitTemperature: ${logits.length} logits, ${y.length} labels`);
  const t = minimiseOverLogT((u) => temperatureNll(logits, y, Math.exp(u)), 1e-9);
  return { temperature: t, nllBefore: temperatureNll(logits, y, 1), nllAfter: temperatureNll(logits, y, t), n: logits.length };
}

/** sigmoid(logit / T) for each logit. */
export function applyTemperature(logits: ArrayLike<number>, t: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = sigmoid(logits[i]! / t);
  return out;
}

export interface StudyTemperatureFit {
  temperature: number;
  /** Study-level NLL at T = 1 and at the fitted T. */
  nllBefore: number;
  nllAfter: number;
  studies: number;
  images: number;
}

/**
 * Temperature scaling fitted at study level: the T in [0.05, 20] minimising the NLL of the study labels under the
 * study probabilities p_s(T) = mean_i sigmoid(z_i / T) (golden-section search on log T, as fitTemperature). One
 * number, applied to every image's logit like the image-level temperature, so exported models carry it unchanged;
 * fitted where the decision is made.
 */
export function fitStudyTemperature(logits: ArrayLike<number>, study: ArrayLike<number>, studyLabels: ArrayLike<number>): StudyTemperatureFit {
  const nStudies = studyLabels.length;
  if (logits.length !== study.length || logits.length === 0 || nStudies === 0) throw new RangeError(`fitStudyTemperature: ${logits.length} logits, ${study.length} study indices, ${nStudies} studies`);
  const f = (u: number): number => logLoss(studyProbabilities(logits, study, nStudies, Math.exp(u)), studyLabels);
  const t = minimiseOverLogT(f, 1e-7);
  return { temperature: t, nllBefore: f(0), nllAfter: f(Math.log(t)), studies: nStudies, images: logits.length };
}

export interface TemperatureChoice {
  /** The level whose fit is used, and its temperature. */
  level: 'image' | 'study';
  temperature: number;
  image: TemperatureFit;
  study: StudyTemperatureFit;
  /** ECE at T = 1 and at the chosen T, per level. */
  imageEce: { before: number; after: number };
  studyEce: { before: number; after: number };
  /** Validation study ECE under each candidate. */
  studyEceWith: { image: number; study: number };
}

/**
 * Temperature scaling where the decision is made: fits T on the image logits (Guo et al.) and on the study
 * probabilities (fitStudyTemperature), and keeps the study-level T when it gives the lower validation study ECE
 * (the unit a clinic decides on), else the image-level T. `study[i]` is image i's study index; `studyLabels[s]`
 * the label of study s.
 */
export function chooseTemperature(logits: ArrayLike<number>, labels: ArrayLike<number>, study: ArrayLike<number>, studyLabels: ArrayLike<number>): TemperatureChoice {
  const image = fitTemperature(logits, labels);
  const st = fitStudyTemperature(logits, study, studyLabels);
  const nStudies = studyLabels.length;
  const studyEceAt = (t: number): number => calibration(studyProbabilities(logits, study, nStudies, t), studyLabels).ece;
  const studyEceWith = { image: studyEceAt(image.temperature), study: studyEceAt(st.temperature) };
  const level = studyEceWith.study < studyEceWith.image ? 'study' : 'image';
  const t = level === 'study' ? st.temperature : image.temperature;
  return {
    level,
    temperature: t,
    image,
    study: st,
    imageEce: { before: calibration(applyTemperature(logits, 1), labels).ece, after: calibration(applyTemperature(logits, t), labels).ece },
    studyEce: { before: studyEceAt(1), after: studyEceAt(t) },
    studyEceWith,
  };
}
