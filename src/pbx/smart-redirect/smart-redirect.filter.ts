import { ArgumentsHost, Catch, HttpException, Logger, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../common/app-error';

/**
 * Every failure of the Smart Redirect URL is `{}` with its status, never the envelope: the PBX
 * reads the body as "route to this extension" or "nobody", and must never see anything else.
 */
@Catch()
export class SmartRedirectExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('SmartRedirect');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const status: number =
      exception instanceof AppError ? exception.status : exception instanceof HttpException ? exception.getStatus() : 500;
    if (status >= 500) {
      this.logger.error({ err: exception, reqId: http.getRequest<FastifyRequest>().id }, 'Smart Redirect request failed');
    }
    void http.getResponse<FastifyReply>().status(status).send({});
  }
}
